#pragma once
// Internal to src/store: what manifest_store.cpp (fetching, publishing) and manifest_store_index.cpp
// (the index, announcements, addresses) share.
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstdlib>
#include <pqxx/pqxx>

#include "frontdoor/config/loader.hpp"
#include "frontdoor/store/manifest_store.hpp"

namespace frontdoor::store::detail {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// After a fetch failed: the stale copy (or the embedded manifests) serve this long before a request
// tries again. Short: the breakers already keep a dead tier from costing a timeout per try.
inline constexpr auto kRetryAfterFailure = std::chrono::seconds(2);
// Checking a document and resolving its endpoints' names (the prepare thread), within a fetch's deadline.
inline constexpr auto kPrepareBudget = std::chrono::seconds(1);
// How long past query_timeout a read may go unanswered before its connection is cut (BlockingPool).
inline constexpr auto kHungQueryGrace = std::chrono::seconds(1);
// A stored document larger than this is refused unread (a manifest is a few KiB).
inline constexpr std::size_t kMaxDocumentBytes = 1 << 20;

inline std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace frontdoor::store::detail

namespace frontdoor::store {

struct ManifestStore::Prepared {
  bool found = false;
  std::uint64_t version = 0;
  std::string document;
  std::string error;  // the query failed (tier error), or empty
  std::vector<std::string> problems;  // the document is invalid (or its endpoints' names did not resolve)
  bool unresolved_only = false;       // every problem is a name that did not resolve: worth trying again
  config::ManifestConfig manifest;
  snapshot::ResolvedEndpoints addresses;
};

struct ManifestStore::Entry {
  StoredKey key;
  std::string joined;
  std::uint64_t index_version = 0;  // the newest version heard of
  // L1
  bool loaded = false;
  std::uint64_t version = 0;
  std::size_t bytes = 0;
  config::ManifestConfig manifest;
  snapshot::ResolvedEndpoints addresses;
  std::chrono::steady_clock::time_point loaded_at{};
  std::chrono::steady_clock::time_point refresh_at{};
  std::chrono::steady_clock::time_point expires_at{};  // loaded: then a request waits; not loaded: embedded until then
  bool stale = false;  // loaded, and its last fetch failed: the copy serves on past its ttl
  // PostgreSQL's document of this version was refused (invalid): it is not read again, nor logged
  // again, until a newer version is announced. 0: none.
  std::uint64_t refused_version = 0;
  std::int32_t slot = -1;
  std::shared_ptr<std::atomic<bool>> refresh_asked = std::make_shared<std::atomic<bool>>(false);
  // The fetch in flight
  bool fetching = false;
  bool fetch_again = false;    // a change arrived during the fetch
  bool delete_announced = false;  // the newest announcement (index_version's) was a delete
  bool absent_in_redis = false;   // this fetch found no copy in Redis
  std::uint64_t fetch_id = 0;
  std::chrono::steady_clock::time_point fetch_started{};
  std::unique_ptr<boost::asio::steady_timer> deadline;           // the whole fetch's
  std::unique_ptr<boost::asio::steady_timer> postgres_deadline;  // the query's (the breaker's signal)
  std::vector<std::function<void()>> waiters;
  bool pinned = false;          // installed since the last publish: its waiters are not answered yet
  std::uint64_t heard_seq = 0;  // changes_heard_ when an announcement last named this key
};

}  // namespace frontdoor::store
