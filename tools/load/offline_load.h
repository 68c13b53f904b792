// strata-load --mode=offline: writes a collection and builds its index straight into a data
// directory (for very large sets; no server may be running on that directory).
#ifndef STRATA_TOOLS_LOAD_OFFLINE_LOAD_H_
#define STRATA_TOOLS_LOAD_OFFLINE_LOAD_H_

#include <string>

#include "tools/load/input.h"

namespace strata::load {

// Loads `in` into `collection` of --data_dir (created when missing); returns the exit code.
int RunOffline(const Input& in, const std::string& collection);

}  // namespace strata::load

#endif  // STRATA_TOOLS_LOAD_OFFLINE_LOAD_H_
