#include "cli/verify_command.h"

#include <string>

#include "util/strings.h"

namespace mailmirror::cli {
void PrintAudits(const std::vector<sync::AuditReport>& reports, bool quiet, std::ostream& out) {
  for (const sync::AuditReport& report : reports) {
    if (!report.status.ok() && report.folders.empty()) continue;
    const std::string& account = report.account->name;
    for (const sync::AuditFinding& finding : report.findings) {
      out << account << ": " << EscapeControls(finding.folder) << ": ";
      if (finding.uid != 0) out << "UID " << finding.uid << ": ";
      if (!finding.file.empty()) out << EscapeControls(finding.file) << ": ";
      out << EscapeControls(finding.what) << '\n';
    }
    uint64_t server = 0;
    uint64_t local = 0;
    uint64_t bodies = 0;
    for (const sync::FolderAudit& folder : report.folders) {
      server += folder.server;
      local += folder.local;
      bodies += folder.bodies;
    }
    if (quiet && report.findings.empty()) continue;
    out << account << ": "
        << (report.findings.empty() ? std::string("the mirror matches")
                                    : CountOf(report.findings.size(), "difference", "differences"))
        << " (" << CountOf(report.folders.size(), "folder", "folders") << ", "
        << CountOf(server, "message", "messages") << " on the server, " << local << " here";
    if (bodies > 0) out << ", " << CountOf(bodies, "body", "bodies") << " compared";
    out << ")\n";
  }
}

}  // namespace mailmirror::cli
