#pragma once
// "host:port" / "[v6]:port" parsing and resolution. Blocking resolution: control thread and CLI only.
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace frontdoor {

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};

// Splits "host:port" and "[v6]:port"; nullopt when malformed or the port is not 0..65535.
std::optional<HostPort> split_host_port(std::string_view text);

// A value or a one-line explanation of what went wrong.
template <class T>
class Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}
  static Expected failure(std::string why) { Expected e; e.v_ = std::move(why); return e; }
  explicit operator bool() const noexcept { return v_.index() == 0; }
  const T& operator*() const { return std::get<0>(v_); }
  const std::string& error() const { return std::get<1>(v_); }

 private:
  Expected() = default;
  std::variant<T, std::string> v_;
};

// Resolves to the first address (numeric addresses need no DNS).
Expected<boost::asio::ip::tcp::endpoint> resolve_address(boost::asio::ip::tcp::resolver& resolver,
                                                         std::string_view text);

// Every address a name resolves to (a headless Service: one per pod), sorted, without duplicates;
// a numeric address is itself.
Expected<std::vector<boost::asio::ip::tcp::endpoint>> resolve_all(boost::asio::ip::tcp::resolver& resolver,
                                                                  std::string_view text);
// True when `text`'s host is a numeric address (no DNS involved).
bool is_numeric_host(std::string_view text);

}  // namespace frontdoor
