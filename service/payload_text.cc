#include "service/payload_text.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "proto/strata.pb.h"

namespace strata {

std::string PayloadText(absl::string_view stored, absl::Span<const std::string> fields) {
  v1::Payload payload;
  if (!payload.ParseFromArray(stored.data(), static_cast<int>(stored.size()))) return {};
  std::string text = std::move(*payload.mutable_text());
  if (fields.empty() || payload.json().empty()) return text;
  const auto json = nlohmann::json::parse(payload.json(), nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return text;
  const auto add = [&text](const nlohmann::json& v) {
    if (v.is_string()) absl::StrAppend(&text, "\n", v.get_ref<const std::string&>());
  };
  for (const std::string& f : fields) {
    auto it = json.find(f);
    if (it == json.end()) continue;
    if (it->is_array()) {
      for (const auto& v : *it) add(v);
    } else {
      add(*it);
    }
  }
  return text;
}

}  // namespace strata
