// The worker's side of the manifest store (pipeline::ManifestFetcher): requests waiting for a stored
// manifest, one request to the store per key however many wait here. Off the hot path: only misses
// and refreshes come here.
#include <boost/asio/post.hpp>

#include "frontdoor/server/worker.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;

void Worker::await(const std::string& key, Waiter& waiter) {
  auto [it, first] = manifest_waits_.try_emplace(key);
  waiter.enqueue(it->second);
  if (!first) return;  // this worker asked already: the answer wakes every waiter
  if (store_ == nullptr) {
    asio::post(io_, [this, key] { manifest_ready(key); });
    return;
  }
  asio::post(*control_, [this, key] {
    store_->fetch(key, [this, key] { asio::post(io_, [this, key] { manifest_ready(key); }); });
  });
}

void Worker::refresh(const std::string& key) {
  if (store_ == nullptr) return;
  asio::post(*control_, [store = store_, key] { store->refresh(key); });
}

void Worker::manifest_ready(const std::string& key) {
  const auto it = manifest_waits_.find(key);
  if (it == manifest_waits_.end()) return;
  Waiter ready;
  ready.splice_from(it->second);
  manifest_waits_.erase(it);
  while (ready.waiting()) {
    Waiter& w = *ready.next;
    w.unlink();
    if (w.wake != nullptr) w.wake(w);
  }
}

}  // namespace frontdoor::server
