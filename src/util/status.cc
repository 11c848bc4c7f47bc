#include "mailmirror/status.h"

namespace mailmirror {

int ExitCodeFor(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage:
      return 64;
    case ErrorKind::kConfig:
      return 78;
    case ErrorKind::kAuth:
      return 77;
    case ErrorKind::kUnavailable:
      return 69;
    case ErrorKind::kProtocol:
      return 76;
    case ErrorKind::kIo:
      return 74;
    case ErrorKind::kTemporary:
      return 75;
    case ErrorKind::kCantCreate:
      return 73;
    case ErrorKind::kInternal:
      return 70;
  }
  return 70;
}

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage:
      return "usage error";
    case ErrorKind::kConfig:
      return "configuration error";
    case ErrorKind::kAuth:
      return "authentication failed";
    case ErrorKind::kUnavailable:
      return "server unavailable";
    case ErrorKind::kProtocol:
      return "protocol error";
    case ErrorKind::kIo:
      return "local I/O error";
    case ErrorKind::kTemporary:
      return "temporary failure";
    case ErrorKind::kCantCreate:
      return "cannot create";
    case ErrorKind::kInternal:
      return "internal error";
  }
  return "internal error";
}

}  // namespace mailmirror
