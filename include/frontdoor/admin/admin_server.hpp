#pragma once
// AdminServer: the operators' HTTP endpoint (probes, metrics), on its own listener and its own
// io_context — the control thread's — so that a stuck worker cannot hide from /health. It serves
// GET on the paths it was given, one request per connection (Connection: close): the request must
// come within kRequestTime and the answer be taken within kAnswerTime; one too large (8 KiB of head,
// 1 KiB of body) or malformed is answered 431, 413 or 400. At most kMaxConnections are
// open; one more makes the oldest go, so idle connections cannot lock probes out (kubelet would
// then restart or unroute a healthy pod): a probe or a scrape lives milliseconds, never a client.
// What each path answers is its handler's business (server/ provides them). Control thread only.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>

namespace frontdoor::admin {

struct Request {
  std::string_view method;
  std::string_view target;
  std::string_view authorization;  // the Authorization header, if any
};

struct Response {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class AdminServer {
 public:
  static constexpr unsigned kMaxConnections = 64;
  static constexpr std::chrono::seconds kRequestTime{2};
  static constexpr std::chrono::seconds kAnswerTime{5};
  using Handler = std::function<Response(const Request&)>;

  AdminServer(boost::asio::io_context& io, boost::asio::ip::tcp::acceptor acceptor);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // GET (and HEAD) handlers, and POST handlers for what changes state.
  void route(std::string path, Handler handler) { routes_[std::move(path)] = std::move(handler); }
  void post_route(std::string path, Handler handler) { post_routes_[std::move(path)] = std::move(handler); }
  void start();
  void stop() noexcept;
  std::uint16_t port() const;
  std::size_t open_connections() const noexcept { return open_->size(); }

  // Answers one request: what a connection gets (for HEAD, the GET's body: the connection sends
  // its length only).
  Response answer(const Request& request) const;
  // The methods `path` serves (a 405's Allow field, RFC 9110 §15.5.6); empty: an unknown path.
  std::string allowed_methods(std::string_view path) const;

 private:
  struct Connection;
  void accept();
  void make_room();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::map<std::string, Handler, std::less<>> routes_;
  std::map<std::string, Handler, std::less<>> post_routes_;
  // Open connections, oldest first; shared with them (one may outlive the server by a handler).
  using OpenList = std::list<std::weak_ptr<Connection>>;
  std::shared_ptr<OpenList> open_ = std::make_shared<OpenList>();
  std::uint64_t evicted_ = 0;
  std::chrono::steady_clock::time_point last_eviction_log_{};
  // An accept that fails (out of descriptors) is tried again after a pause, not at once: at once,
  // the control thread spun on it at 100 % of a core while /health had to answer.
  boost::asio::steady_timer accept_retry_;
  std::uint64_t accept_errors_ = 0;
  std::chrono::steady_clock::time_point last_accept_error_log_{};
  bool stopped_ = false;
};

}  // namespace frontdoor::admin
