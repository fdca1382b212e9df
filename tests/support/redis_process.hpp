#pragma once
// RedisProcess: a private redis-server for unit tests, on a Unix socket in a fresh temporary
// directory (no TCP port, no persistence). Started in the constructor, stopped by PID in the
// destructor. `ok()` says whether it answered; tests skip nothing: a missing server fails them.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

namespace frontdoor::test {

class RedisProcess {
 public:
  RedisProcess() {
    char dir[] = "/tmp/fd-redis-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return;
    dir_ = dir;
    socket_ = dir_ + "/redis.sock";
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string log = dir_ + "/redis.log";
      std::freopen(log.c_str(), "a", stdout);
      std::freopen(log.c_str(), "a", stderr);
      ::execl("/usr/bin/redis-server", "redis-server", "--port", "0", "--unixsocket", socket_.c_str(), "--save", "",
              "--appendonly", "no", "--dir", dir_.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (ping()) {
        ok_ = true;
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~RedisProcess() {
    stop();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  bool ok() const { return ok_; }
  std::string address() const { return "unix:" + socket_; }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  // Sends one inline command and returns the raw reply bytes (tests look for substrings).
  std::string command(const std::string& line) const {
    const int fd = connect_socket();
    if (fd < 0) return {};
    const std::string out = line + "\r\n";
    (void)::write(fd, out.data(), out.size());
    char buffer[4096];
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const auto n = ::read(fd, buffer, sizeof buffer);
    ::close(fd);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  int connect_socket() const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
  bool ping() const { return command("PING").rfind("+PONG", 0) == 0; }

  std::string dir_;
  std::string socket_;
  pid_t pid_ = -1;
  bool ok_ = false;
};

}  // namespace frontdoor::test
