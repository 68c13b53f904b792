// Command-line help for Strata's programs: `--help` lists the program's own flags.
//
// Abseil's --help shows the flags of files named after the program (strata-server.cc) or
// *main.cc, which none of ours match, so --help printed "No flags matched" and users had to find
// --helpfull. Here every flag not defined inside Abseil itself counts as the program's own.
#ifndef STRATA_STORAGE_PROGRAM_USAGE_H_
#define STRATA_STORAGE_PROGRAM_USAGE_H_

#include <string>

#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace strata {

// Call once at the start of main, before absl::ParseCommandLine.
inline void SetProgramUsage(absl::string_view message) {
  absl::SetProgramUsageMessage(message);
  absl::FlagsUsageConfig config;
  auto ours = [](absl::string_view file) { return !absl::StrContains(file, "absl/"); };
  config.contains_helpshort_flags = ours;
  config.contains_help_flags = ours;
  // "Flags from tools/strata_cli.cc", not the build machine's absolute path.
  // (Abseil filters on the normalised name, so Abseil's own files keep their "absl/" prefix.)
  config.normalize_filename = [](absl::string_view file) -> std::string {
    const size_t absl_dir = file.find("absl/");
    if (absl_dir != absl::string_view::npos) return std::string(file.substr(absl_dir));
    size_t cut = file.rfind('/');
    if (cut != absl::string_view::npos && cut > 0) cut = file.rfind('/', cut - 1);
    return std::string(cut == absl::string_view::npos ? file : file.substr(cut + 1));
  };
  absl::SetFlagsUsageConfig(config);
}

}  // namespace strata

#endif  // STRATA_STORAGE_PROGRAM_USAGE_H_
