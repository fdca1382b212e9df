#pragma once
// After a gather write of `head` then `body` sent only `written` bytes: what is left to send.
#include <cstddef>
#include <string>
#include <string_view>

namespace frontdoor::core {

// The unsent part of the head is copied into `spill` (a head usually lives in scratch space that is
// about to be reused); the unsent part of the body is returned as a view (a body's buffer is not
// touched until the write ends). `spill` is left empty when the head went out whole.
inline std::string_view keep_unsent(std::string& spill, std::string_view head, std::string_view body,
                                    std::size_t written) {
  if (written < head.size()) {
    spill.assign(head.substr(written));
    return body;
  }
  spill.clear();
  body.remove_prefix(written - head.size());
  return body;
}

}  // namespace frontdoor::core
