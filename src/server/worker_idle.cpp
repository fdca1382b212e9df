// Idle client connections: keep-alive sessions between requests (the idle list, oldest first, from
// which max_connections reclaims) and plain connections parked without a session (IdleConnection).
#include <boost/asio/ip/tcp.hpp>

#include "frontdoor/server/session.hpp"
#include "frontdoor/server/worker.hpp"

namespace frontdoor::server {

namespace asio = boost::asio;
using boost::system::error_code;

void Worker::park(asio::ip::tcp::socket socket, core::DrainAwareReader reader, const ListenerInfo& listener,
                  const asio::ip::address& peer, std::string_view peer_text, ClientConnectionCounts::Slot client_slot) {
  IdleConnection* c;
  if (!free_parked_.empty()) {
    c = free_parked_.back().release();
    free_parked_.pop_back();
  } else {
    c = new IdleConnection(io_);
  }
  c->socket = std::move(socket);
  c->listener = &listener;
  c->peer = peer;
  c->client_slot = std::move(client_slot);
  c->peer_text_size = static_cast<std::uint8_t>(std::min(peer_text.size(), c->peer_text_bytes.size()));
  std::memcpy(c->peer_text_bytes.data(), peer_text.data(), c->peer_text_size);
  c->closed = false;
  c->idle_since = coarse_now();
  c->idle_order = ++idle_order_;
  c->older = parked_newest_;
  c->newer = nullptr;
  if (parked_newest_ != nullptr) parked_newest_->newer = c;
  else parked_oldest_ = c;
  parked_newest_ = c;
  ++parked_count_;
  c->read_pending = true;
  c->reader = reader;
  c->reader.async_read_some(c->socket, asio::buffer(c->first_bytes), core::ReadStart::on_readiness,
                            [this, c](const error_code& ec, std::size_t n) { on_parked_read(c, ec, n); });
}

void Worker::on_parked_read(IdleConnection* c, const error_code& ec, std::size_t n) {
  c->read_pending = false;
  if (c->closed) return recycle_parked(c);  // reclaimed, idle too long, or the drain: settled already
  unlink_parked(c);
  counters_[stats::Counter::bytes_from_clients] += n;
  if (ec || n == 0) {  // the client closed its idle connection
    error_code ignored;
    c->socket.close(ignored);
    c->client_slot.reset();
    connections_.fetch_sub(1, std::memory_order_relaxed);
    recycle_parked(c);
    if (draining_) check_drained();
    return;
  }
  // Its next request: a session takes the connection back (the IdleConnection is recycled after:
  // the session copied what it needs).
  new_session()->resume(std::move(c->socket), c->reader, *c->listener, c->peer, c->peer_text(),
                        std::string_view(c->first_bytes.data(), n), std::move(c->client_slot));
  recycle_parked(c);
}

void Worker::close_parked(IdleConnection* c, bool settle) noexcept {
  if (c->closed) return;
  c->closed = true;
  unlink_parked(c);
  error_code ignored;
  c->socket.close(ignored);  // its read completes (aborted) and recycles it
  c->client_slot.reset();    // its client's share is free even when a new connection takes the slot
  if (settle) connections_.fetch_sub(1, std::memory_order_relaxed);
}

void Worker::unlink_parked(IdleConnection* c) noexcept {
  if (c->older != nullptr) c->older->newer = c->newer;
  else if (parked_oldest_ == c) parked_oldest_ = c->newer;
  if (c->newer != nullptr) c->newer->older = c->older;
  else if (parked_newest_ == c) parked_newest_ = c->older;
  c->older = c->newer = nullptr;
  --parked_count_;
}

void Worker::recycle_parked(IdleConnection* c) noexcept {
  if (free_parked_.size() < 256 && !draining_) free_parked_.emplace_back(c);
  else delete c;
}

void Worker::session_parked(Session* session) noexcept {
  if (session->prev_ != nullptr) session->prev_->next_ = session->next_;
  else sessions_ = session->next_;
  if (session->next_ != nullptr) session->next_->prev_ = session->prev_;
  session->prev_ = session->next_ = nullptr;
  --session_count_;
  std::unique_ptr<Session> owned(session);
  if (free_sessions_.size() < kMaxFreeSessions) free_sessions_.push_back(std::move(owned));
}

void Worker::mark_idle(Session* session) noexcept {
  if (session->idle_linked_) return;
  session->idle_linked_ = true;
  session->idle_order_ = ++idle_order_;
  session->idle_prev_ = idle_newest_;
  session->idle_next_ = nullptr;
  if (idle_newest_ != nullptr) idle_newest_->idle_next_ = session;
  else idle_oldest_ = session;
  idle_newest_ = session;
}

void Worker::mark_busy(Session* session) noexcept {
  if (!session->idle_linked_) return;
  session->idle_linked_ = false;
  if (session->idle_prev_ != nullptr) session->idle_prev_->idle_next_ = session->idle_next_;
  else idle_oldest_ = session->idle_next_;
  if (session->idle_next_ != nullptr) session->idle_next_->idle_prev_ = session->idle_prev_;
  else idle_newest_ = session->idle_prev_;
  session->idle_prev_ = session->idle_next_ = nullptr;
}

}  // namespace frontdoor::server
