#include "frontdoor/admin/admin_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <spdlog/spdlog.h>

namespace frontdoor::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct AdminServer::Connection : std::enable_shared_from_this<Connection> {
  Connection(asio::ip::tcp::socket socket, const AdminServer& server, std::shared_ptr<OpenList> open)
      : stream(std::move(socket)), server(server), open(std::move(open)) {}
  ~Connection() {
    if (place) open->erase(*place);
  }

  void start() {
    place = open->insert(open->end(), weak_from_this());
    parser.header_limit(8 * 1024);
    parser.body_limit(1024);
    stream.expires_after(kRequestTime);
    http::async_read(stream, buffer, parser, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    if (ec) return refuse(ec);
    const auto& request = parser.get();
    const auto authorization = request[http::field::authorization];
    Response r = server.answer({std::string_view(request.method_string().data(), request.method_string().size()),
                                std::string_view(request.target().data(), request.target().size()),
                                std::string_view(authorization.data(), authorization.size())});
    response.result(r.status);
    response.version(11);
    response.set(http::field::content_type, r.content_type);
    response.set(http::field::cache_control, "no-store");
    response.keep_alive(false);
    if (r.status == 405) {
      const std::string_view target(request.target().data(), request.target().size());
      response.set(http::field::allow, server.allowed_methods(target.substr(0, target.find('?'))));
    }
    response.body() = std::move(r.body);
    response.prepare_payload();  // a HEAD's Content-Length is the GET's
    if (parser.get().method() == http::verb::head) response.body().clear();
    stream.expires_after(kAnswerTime);
    http::async_write(stream, response, [self = shared_from_this()](beast::error_code, std::size_t) {
      beast::error_code ignored;
      self->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    });
  }

  // A request that could not be read: one too large or malformed gets a status that says so (it was
  // reset without an answer), then the connection lingers so that the unread rest of the request
  // does not reset the answer away. A peer that left or took too long gets nothing.
  void refuse(beast::error_code ec) {
    if (ec.category() != http::make_error_code(http::error::end_of_stream).category() || ec == http::error::end_of_stream ||
        ec == http::error::partial_message)
      return;
    const bool body = ec == http::error::body_limit;
    const bool head = ec == http::error::header_limit;
    response.result(body ? 413 : head ? 431 : 400);
    response.version(11);
    response.set(http::field::content_type, "text/plain; charset=utf-8");
    response.keep_alive(false);
    response.body() = body   ? "413 payload too large: an admin request carries at most 1 KiB of body\n"
                      : head ? "431 request header fields too large: at most 8 KiB of head\n"
                             : "400 bad request: " + ec.message() + "\n";
    response.prepare_payload();
    stream.expires_after(kAnswerTime);
    http::async_write(stream, response, [self = shared_from_this()](beast::error_code write_ec, std::size_t) {
      if (write_ec) return;
      beast::error_code ignored;
      self->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
      self->discard_until_closed(kLingerBytes);
    });
  }

  void discard_until_closed(std::size_t budget) {
    buffer.clear();
    stream.async_read_some(buffer.prepare(4096), [self = shared_from_this(), budget](beast::error_code ec, std::size_t n) {
      if (!ec && n < budget) self->discard_until_closed(budget - n);
    });
  }

  static constexpr std::size_t kLingerBytes = 64 * 1024;

  beast::tcp_stream stream;
  const AdminServer& server;
  std::shared_ptr<OpenList> open;
  std::optional<OpenList::iterator> place;  // in `open` from start() on
  beast::flat_buffer buffer;
  http::request_parser<http::string_body> parser;
  http::response<http::string_body> response;
};

AdminServer::AdminServer(asio::io_context& io, asio::ip::tcp::acceptor acceptor)
    : io_(io), acceptor_(std::move(acceptor)), accept_retry_(io) {}

AdminServer::~AdminServer() { stop(); }

std::uint16_t AdminServer::port() const {
  beast::error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

void AdminServer::start() { accept(); }

void AdminServer::stop() noexcept {
  stopped_ = true;
  beast::error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
}

void AdminServer::accept() {
  acceptor_.async_accept([this](beast::error_code ec, asio::ip::tcp::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (!ec) {
      if (open_->size() >= kMaxConnections) make_room();
      std::make_shared<Connection>(std::move(socket), *this, open_)->start();
      return accept();
    }
    ++accept_errors_;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_accept_error_log_ >= std::chrono::minutes(1)) {
      last_accept_error_log_ = now;
      spdlog::warn("admin listener: accept: {} ({} so far): trying again every 100 ms", ec.message(), accept_errors_);
    }
    accept_retry_.expires_after(std::chrono::milliseconds(100));
    accept_retry_.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && !stopped_) accept();
    });
  });
}

void AdminServer::make_room() {
  // The oldest still open goes; it leaves the list once its cancelled operation has ended.
  for (const auto& entry : *open_) {
    const auto connection = entry.lock();
    if (!connection || !connection->stream.socket().is_open()) continue;
    beast::error_code ignored;
    connection->stream.socket().close(ignored);
    break;
  }
  ++evicted_;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_eviction_log_ >= std::chrono::minutes(1)) {
    last_eviction_log_ = now;
    spdlog::warn("admin listener: {} connections open, closing the oldest to take a new one ({} so far): "
                 "something holds connections without sending requests",
                 open_->size(), evicted_);
  }
}

Response AdminServer::answer(const Request& request) const {
  const std::string_view path = request.target.substr(0, request.target.find('?'));
  const auto get = routes_.find(path);
  const auto post = post_routes_.find(path);
  if (get == routes_.end() && post == post_routes_.end()) {
    std::string known;
    for (const auto& [p, h] : routes_) known += (known.empty() ? "" : ", ") + p;
    for (const auto& [p, h] : post_routes_) known += (known.empty() ? "POST " : ", POST ") + p;
    return {404, "text/plain; charset=utf-8", "404 not found: the admin listener serves " + known + "\n"};
  }
  if (request.method == "POST" && post != post_routes_.end()) return post->second(request);
  if ((request.method == "GET" || request.method == "HEAD") && get != routes_.end()) return get->second(request);
  return {405, "text/plain; charset=utf-8", "405 method not allowed: " + allowed_methods(path) + "\n"};
}

std::string AdminServer::allowed_methods(std::string_view path) const {
  const bool get = routes_.find(path) != routes_.end();
  const bool post = post_routes_.find(path) != post_routes_.end();
  return get && post ? "GET, HEAD, POST" : get ? "GET, HEAD" : post ? "POST" : "";
}

}  // namespace frontdoor::admin
