#pragma once
// AdminServer: the operators' HTTP endpoint (probes, metrics), on its own listener and its own
// io_context — the control thread's — so that a stuck worker cannot hide from /health. It serves
// GET on the paths it was given, one request per connection (Connection: close), with a 5 s limit
// on each connection and at most kMaxConnections at once: a probe or a scrape, never a client.
// What each path answers is its handler's business (server/ provides them). Control thread only.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
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

  // Answers one request: what a connection gets.
  Response answer(const Request& request) const;

 private:
  struct Connection;
  void accept();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::map<std::string, Handler, std::less<>> routes_;
  std::map<std::string, Handler, std::less<>> post_routes_;
  std::shared_ptr<unsigned> open_ = std::make_shared<unsigned>(0);
  bool stopped_ = false;
};

}  // namespace frontdoor::admin
