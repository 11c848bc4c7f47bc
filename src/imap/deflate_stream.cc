#include "imap/deflate_stream.h"

#include <zlib.h>

#include <array>

namespace mailmirror::imap {
namespace {

// Negative window bits: raw DEFLATE without the zlib wrapper (RFC 4978 §3).
constexpr int kRawWindowBits = -15;
constexpr int kMemoryLevel = 8;
// Output is produced and consumed in pieces of this size, so a small input
// that inflates to a lot never needs a large buffer.
constexpr size_t kChunk = 64 * 1024;

Error ZlibError(ErrorKind kind, const char* what, const z_stream& stream, int code) {
  std::string message = std::string(what) + " failed (zlib error " + std::to_string(code);
  if (stream.msg != nullptr) message += std::string(": ") + stream.msg;
  return MakeError(kind, message + ")");
}

}  // namespace

struct DeflateStream::Impl {
  z_stream deflater{};
  z_stream inflater{};
  bool deflater_ready = false;
  bool inflater_ready = false;
  bool input_ended = false;
  std::array<char, kChunk> out{};

  ~Impl() {
    if (deflater_ready) deflateEnd(&deflater);
    if (inflater_ready) inflateEnd(&inflater);
  }
};

DeflateStream::DeflateStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DeflateStream::~DeflateStream() = default;

Result<std::unique_ptr<DeflateStream>> DeflateStream::Create() {
  auto impl = std::make_unique<Impl>();
  int code = deflateInit2(&impl->deflater, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kRawWindowBits,
                          kMemoryLevel, Z_DEFAULT_STRATEGY);
  if (code != Z_OK) return ZlibError(ErrorKind::kInternal, "deflateInit2", impl->deflater, code);
  impl->deflater_ready = true;
  code = inflateInit2(&impl->inflater, kRawWindowBits);
  if (code != Z_OK) return ZlibError(ErrorKind::kInternal, "inflateInit2", impl->inflater, code);
  impl->inflater_ready = true;
  return std::unique_ptr<DeflateStream>(new DeflateStream(std::move(impl)));
}

Status DeflateStream::Compress(std::string_view plain, std::string* out) {
  z_stream& stream = impl_->deflater;
  // zlib's API predates const; it never writes through next_in.
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  stream.avail_in = static_cast<uInt>(plain.size());
  do {
    stream.next_out = reinterpret_cast<Bytef*>(impl_->out.data());
    stream.avail_out = static_cast<uInt>(impl_->out.size());
    int code = deflate(&stream, Z_SYNC_FLUSH);
    if (code != Z_OK && code != Z_BUF_ERROR) {
      return ZlibError(ErrorKind::kInternal, "compressing a command", stream, code);
    }
    out->append(impl_->out.data(), impl_->out.size() - stream.avail_out);
    // A full output buffer may hide more pending output.
  } while (stream.avail_out == 0 || stream.avail_in != 0);
  return Status::Ok();
}

Status DeflateStream::Decompress(std::string_view compressed, const Sink& sink) {
  z_stream& stream = impl_->inflater;
  if (impl_->input_ended && !compressed.empty()) {
    return MakeError(ErrorKind::kProtocol, "data after the end of the compressed stream");
  }
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  while (stream.avail_in != 0) {
    stream.next_out = reinterpret_cast<Bytef*>(impl_->out.data());
    stream.avail_out = static_cast<uInt>(impl_->out.size());
    int code = inflate(&stream, Z_SYNC_FLUSH);
    if (code != Z_OK && code != Z_STREAM_END && code != Z_BUF_ERROR) {
      return ZlibError(ErrorKind::kProtocol, "decompressing the server's data", stream, code);
    }
    size_t produced = impl_->out.size() - stream.avail_out;
    if (produced != 0) {
      Status status = sink(std::string_view(impl_->out.data(), produced));
      if (!status.ok()) return status;
    }
    if (code == Z_STREAM_END) {
      impl_->input_ended = true;
      if (stream.avail_in != 0) {
        return MakeError(ErrorKind::kProtocol, "data after the end of the compressed stream");
      }
      break;
    }
    if (code == Z_BUF_ERROR && produced == 0) {
      // Input left, room for output, and still no progress.
      return MakeError(ErrorKind::kProtocol, "the server's compressed data does not decode");
    }
  }
  return Status::Ok();
}

}  // namespace mailmirror::imap
