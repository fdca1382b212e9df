#include "frontdoor/manifest/manifest.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace frontdoor::manifest {
namespace {

constexpr char kSep = '\x1f';
constexpr std::size_t kMaxKeyBytes = 512;

// Bit per wildcard pattern, in lookup order: most specific first, project weighs most.
// bit0 (p,m,e) bit1 (p,m,*) bit2 (p,*,e) bit3 (p,*,*) bit4 (*,m,e) bit5 (*,m,*) bit6 (*,*,e) bit7 (*,*,*)
int pattern_of(std::string_view p, std::string_view m, std::string_view e) {
  return (p == "*" ? 4 : 0) | (m == "*" ? 2 : 0) | (e == "*" ? 1 : 0);
}

std::size_t write_key(char* out, std::string_view p, std::string_view m, std::string_view e) {
  char* o = out;
  o = std::copy(p.begin(), p.end(), o);
  *o++ = kSep;
  o = std::copy(m.begin(), m.end(), o);
  *o++ = kSep;
  o = std::copy(e.begin(), e.end(), o);
  return static_cast<std::size_t>(o - out);
}

}  // namespace

ManifestTable::ManifestTable(std::vector<Manifest> manifests, std::size_t searchable)
    : manifests_(std::move(manifests)) {
  for (std::uint32_t i = 0; i < manifests_.size(); ++i) {
    Manifest& m = manifests_[i];
    m.index = i;
    if (i >= searchable) continue;
    std::string key = m.project + kSep + m.module + kSep + m.environment;
    by_key_.emplace(std::move(key), i);
    patterns_present_ |= static_cast<std::uint8_t>(1u << pattern_of(m.project, m.module, m.environment));
  }
}

// Probes the patterns present, most specific first; `lookup` returns non-null for a hit.
template <class Lookup>
auto find_most_specific(std::uint8_t patterns_present, std::string_view project, std::string_view module,
                        std::string_view environment, Lookup&& lookup) noexcept -> decltype(lookup(std::string_view())) {
  if (project.size() + module.size() + environment.size() + 2 > kMaxKeyBytes) {
    project = module = environment = "*";  // too long to be configured: only wildcards can match
  }
  std::array<char, kMaxKeyBytes + 8> key;
  for (int pattern = 0; pattern < 8; ++pattern) {
    if ((patterns_present & (1u << pattern)) == 0) continue;
    const std::string_view p = (pattern & 4) ? std::string_view("*") : project;
    const std::string_view m = (pattern & 2) ? std::string_view("*") : module;
    const std::string_view e = (pattern & 1) ? std::string_view("*") : environment;
    const std::size_t n = write_key(key.data(), p, m, e);
    if (auto hit = lookup(std::string_view(key.data(), n))) return hit;
  }
  return nullptr;
}

const Manifest* ManifestTable::find(std::string_view project, std::string_view module,
                                    std::string_view environment) const noexcept {
  return find_most_specific(patterns_present_, project, module, environment,
                            [&](std::string_view key) -> const Manifest* {
                              const auto it = by_key_.find(key);
                              return it == by_key_.end() ? nullptr : &manifests_[it->second];
                            });
}

void StoredIndex::add(std::string_view project, std::string_view module, std::string_view environment,
                      StoredEntry entry) {
  std::array<char, kMaxKeyBytes + 8> key;
  if (project.size() + module.size() + environment.size() + 2 > kMaxKeyBytes) return;
  const std::size_t n = write_key(key.data(), project, module, environment);
  entries_.insert_or_assign(std::string(key.data(), n), std::move(entry));
  patterns_present_ |= static_cast<std::uint8_t>(1u << pattern_of(project, module, environment));
}

const StoredEntry* StoredIndex::find(std::string_view project, std::string_view module,
                                     std::string_view environment) const noexcept {
  return find_most_specific(patterns_present_, project, module, environment,
                            [&](std::string_view key) -> const StoredEntry* {
                              const auto it = entries_.find(key);
                              return it == entries_.end() ? nullptr : &it->second;
                            });
}

RouteKey split_route(std::string_view target) noexcept {
  RouteKey key;
  // absolute-form (RFC 9112 §3.2.2): route on its path.
  if (!target.empty() && target.front() != '/') {
    const auto scheme = target.find("://");
    if (scheme == std::string_view::npos) return key;
    const auto path = target.find('/', scheme + 3);
    if (path == std::string_view::npos) return key;
    target.remove_prefix(path);
  }
  const auto query = target.find('?');
  const std::string_view path = target.substr(0, query);
  std::size_t pos = 1;
  auto segment = [&](std::string_view& out) {
    if (pos > path.size()) return;
    const auto slash = path.find('/', pos);
    out = path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    pos = slash == std::string_view::npos ? path.size() + 1 : slash + 1;
    // A path parameter is not part of the name: Tomcat and Spring serve "/shop/checkout;a/pay" as
    // "/shop/checkout/pay", so it must take checkout's manifest, not shop/*'s.
    out = out.substr(0, out.find(';'));
  };
  segment(key.project);
  segment(key.module);
  const std::size_t rest_begin = std::min(pos == path.size() + 1 ? path.size() : pos - 1, target.size());
  key.rest = target.substr(rest_begin);
  return key;
}

}  // namespace frontdoor::manifest
