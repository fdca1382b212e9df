#include "frontdoor/core/address.hpp"

#include <algorithm>

#include <charconv>

namespace frontdoor {

std::optional<HostPort> split_host_port(std::string_view text) {
  HostPort hp;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    hp.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    hp.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  if (hp.host.empty() || port.empty() || port.size() > 5) return std::nullopt;
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || value > 65535) return std::nullopt;
  hp.port = static_cast<std::uint16_t>(value);
  return hp;
}

Expected<boost::asio::ip::tcp::endpoint> resolve_address(boost::asio::ip::tcp::resolver& resolver,
                                                         std::string_view text) {
  auto hp = split_host_port(text);
  if (!hp) return Expected<boost::asio::ip::tcp::endpoint>::failure("expected host:port");
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(hp->host, ec);
  if (!ec) return boost::asio::ip::tcp::endpoint(address, hp->port);
  auto results = resolver.resolve(hp->host, std::to_string(hp->port), ec);
  if (ec || results.empty())
    return Expected<boost::asio::ip::tcp::endpoint>::failure("cannot resolve \"" + hp->host + "\": " +
                                                             (ec ? ec.message() : "no address"));
  return results.begin()->endpoint();
}

Expected<std::vector<boost::asio::ip::tcp::endpoint>> resolve_all(boost::asio::ip::tcp::resolver& resolver,
                                                                  std::string_view text) {
  using Result = Expected<std::vector<boost::asio::ip::tcp::endpoint>>;
  auto hp = split_host_port(text);
  if (!hp) return Result::failure("expected host:port");
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(hp->host, ec);
  if (!ec) return std::vector<boost::asio::ip::tcp::endpoint>{{address, hp->port}};
  auto results = resolver.resolve(hp->host, std::to_string(hp->port), ec);
  if (ec || results.empty())
    return Result::failure("cannot resolve \"" + hp->host + "\": " + (ec ? ec.message() : "no address"));
  std::vector<boost::asio::ip::tcp::endpoint> all;
  for (const auto& r : results) all.push_back(r.endpoint());
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

bool is_numeric_host(std::string_view text) {
  auto hp = split_host_port(text);
  if (!hp) return false;
  boost::system::error_code ec;
  (void)boost::asio::ip::make_address(hp->host, ec);
  return !ec;
}

}  // namespace frontdoor
