// The worker's listeners: adopted at start and by a reload (which may also rename or remove them).
// Off the hot path; accepting itself is in worker.cpp.
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "frontdoor/server/worker.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;
using boost::system::error_code;

// TCP_NODELAY is set on the listening socket: accepted sockets inherit it (Linux), which saves a
// setsockopt per connection.
std::unique_ptr<Worker::Listener> Worker::make_listener(int fd, bool v6, const ListenerInfo* info) {
  asio::ip::tcp::acceptor acceptor(io_);
  error_code ec;
  acceptor.assign(v6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd, ec);
  if (!ec) acceptor.non_blocking(true, ec);
  error_code ignored;
  if (!ec) acceptor.set_option(asio::ip::tcp::no_delay(true), ignored);
  if (ec) {
    spdlog::error("worker {}: listener {}: {}", index_, info->name, ec.message());
    if (!acceptor.is_open()) ::close(fd);
    return nullptr;
  }
  return std::make_unique<Listener>(
      Listener{std::move(acceptor), info, core::AcceptedSocket(io_), {}, asio::steady_timer(io_), 0, {}});
}

void Worker::adopt_listener(int fd, bool v6, const ListenerInfo* info, bool live) {
  const auto adopt = [this, fd, v6, info] {
    auto listener = make_listener(fd, v6, info);
    if (listener == nullptr) return;
    listeners_.push_back(std::move(listener));
    accept(*listeners_.back());
  };
  if (!live) {
    // Before run(): the loop's first turn starts accepting (run() walks the listeners).
    if (auto listener = make_listener(fd, v6, info)) listeners_.push_back(std::move(listener));
    return;
  }
  asio::post(io_, adopt);
}

void Worker::retarget_listener(const ListenerInfo* from, const ListenerInfo* to) {
  asio::post(io_, [this, from, to] {
    for (auto& l : listeners_)
      if (l->info == from) l->info = to;
  });
}

void Worker::remove_listener(const ListenerInfo* info) {
  asio::post(io_, [this, info] {
    for (auto& l : listeners_)
      if (l->info == info && l->acceptor.is_open()) {
        // Its pending accept completes (aborted) into this object: it stays in the list, closed.
        error_code ignored;
        l->acceptor.close(ignored);
        l->retry.cancel();
      }
  });
}

}  // namespace frontdoor::server
