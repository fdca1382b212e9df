// floor_relay: the cheapest proxy the kernel allows, to measure how low CPU per request can go (#12).
//
//   g++ -std=c++20 -O2 -Wall -Wextra -o /tmp/floor_relay bench/floor_relay.cpp -luring   # bench/floor.py does this
//   /tmp/floor_relay --listen 18290 --to 127.0.0.1:18101[,127.0.0.1:18102] --mode epoll|uring
//
// Not a proxy: it parses nothing. Each client connection gets its own upstream connection (the
// upstreams named by --to, in turn) and bytes are copied both ways as they come. On the bench's
// keep-alive test that is the same traffic as an HTTP proxy with a pooled upstream: per request, one
// receive and one send on each side. So its CPU per request is the floor of any design that makes
// those calls, and the two modes, side by side in one run, show what io_uring can save:
//
//   epoll: nginx's model. Both sockets registered once, edge-triggered; a receive shorter than the
//          buffer means drained (no receive that returns EAGAIN); send() at once.
//   uring: one ring per process (SINGLE_ISSUER, DEFER_TASKRUN), multishot receives into a provided
//          buffer ring, sends submitted from the completions, one io_uring_enter per loop turn.
//
// Single-threaded, bench only: in epoll mode a send the socket cannot take whole waits in poll()
// (not seen on loopback at these sizes); IPv4 addresses only.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if __has_include(<liburing.h>)
#include <liburing.h>
#define FLOOR_HAS_URING 1
#endif

namespace {

[[noreturn]] void die(const char* what) {
    std::perror(what);
    std::exit(1);
}

std::vector<sockaddr_in> upstreams;
std::size_t next_upstream = 0;

sockaddr_in parse_address(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) die("--to wants host:port");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(std::stoi(text.substr(colon + 1))));
    if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &address.sin_addr) != 1) die("--to address");
    return address;
}

int listen_on(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // inherited by accepted sockets
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) die("bind");
    if (listen(fd, 4096) != 0) die("listen");
    return fd;
}

// A blocking connect on loopback, then non-blocking: connections are made once per client.
int connect_upstream() {
    const sockaddr_in& address = upstreams[next_upstream++ % upstreams.size()];
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

bool send_all(int fd, const char* data, std::size_t size) {
    while (size > 0) {
        const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            size -= static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EAGAIN) {
            pollfd p{fd, POLLOUT, 0};
            poll(&p, 1, 1000);
        } else {
            return false;
        }
    }
    return true;
}

// ---- epoll ------------------------------------------------------------------------------------

void run_epoll(int listener) {
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = ~uint64_t{0};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    std::vector<int> peer(1 << 16, -1);
    static char buffer[64 * 1024];
    epoll_event events[256];
    const auto hang_up = [&](int fd) {
        const int other = peer[fd];
        peer[fd] = -1;
        close(fd);  // never dup()ed: the kernel drops the epoll registration with the last reference
        if (other >= 0) {
            peer[other] = -1;
            close(other);
        }
    };
    for (;;) {
        const int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; ++i) {
            if (events[i].data.u64 == ~uint64_t{0}) {
                for (;;) {
                    const int client = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (client < 0) break;
                    const int upstream = connect_upstream();
                    if (upstream < 0) {
                        close(client);
                        continue;
                    }
                    peer[client] = upstream;
                    peer[upstream] = client;
                    for (int fd : {client, upstream}) {
                        epoll_event add{};
                        add.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
                        add.data.u64 = static_cast<uint64_t>(fd);
                        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &add);
                    }
                }
                continue;
            }
            const int fd = static_cast<int>(events[i].data.u64);
            if (peer[fd] < 0) continue;  // closed earlier in this batch
            const bool fin_seen = events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
            for (;;) {
                const ssize_t got = recv(fd, buffer, sizeof buffer, 0);
                if (got > 0) {
                    if (!send_all(peer[fd], buffer, static_cast<std::size_t>(got))) {
                        hang_up(fd);
                        break;
                    }
                    // Short read: drained, as nginx assumes under EPOLLET; unless the FIN came too.
                    if (static_cast<std::size_t>(got) < sizeof buffer && !fin_seen) break;
                } else if (got < 0 && errno == EAGAIN) {
                    break;
                } else {
                    hang_up(fd);
                    break;
                }
            }
        }
    }
}

#ifdef FLOOR_HAS_URING
// ---- io_uring ---------------------------------------------------------------------------------

constexpr unsigned kBuffers = 1024;       // a power of two
constexpr unsigned kBufferSize = 32 * 1024;
constexpr uint16_t kGroup = 0;

enum Op : uint64_t { kAccept = 1, kRecv = 2, kSend = 3 };

// user_data: op in the top byte, buffer id in bits 32..47, descriptor in the low 32 bits.
uint64_t tag(Op op, int fd, unsigned bid = 0) {
    return (uint64_t{op} << 56) | (uint64_t{bid} << 32) | static_cast<uint32_t>(fd);
}

struct Uring {
    io_uring ring{};
    io_uring_buf_ring* buffers = nullptr;
    char* memory = nullptr;
    std::vector<int> peer = std::vector<int>(1 << 16, -1);
    std::vector<int> pending = std::vector<int>(1 << 16, 0);  // operations in flight per descriptor
    std::vector<char> closing = std::vector<char>(1 << 16, 0);
    std::vector<unsigned> send_offset = std::vector<unsigned>(kBuffers, 0);
    std::vector<unsigned> send_length = std::vector<unsigned>(kBuffers, 0);
    // One send in flight per socket, so that bytes keep their order when a send has to wait.
    std::vector<char> sending = std::vector<char>(1 << 16, 0);
    std::vector<std::vector<unsigned>> queued = std::vector<std::vector<unsigned>>(1 << 16);

    io_uring_sqe* sqe() {
        io_uring_sqe* s = io_uring_get_sqe(&ring);
        if (s == nullptr) {
            io_uring_submit(&ring);
            s = io_uring_get_sqe(&ring);
        }
        return s;
    }

    void give_back(unsigned bid) {
        io_uring_buf_ring_add(buffers, memory + std::size_t{bid} * kBufferSize, kBufferSize,
                              static_cast<unsigned short>(bid), io_uring_buf_ring_mask(kBuffers), 0);
        io_uring_buf_ring_advance(buffers, 1);
    }

    void arm_recv(int fd) {
        io_uring_sqe* s = sqe();
        io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
        s->flags |= IOSQE_BUFFER_SELECT;
        s->buf_group = kGroup;
        io_uring_sqe_set_data64(s, tag(kRecv, fd));
        ++pending[fd];
    }

    void send_or_queue(int fd, unsigned bid) {
        if (sending[fd]) {
            queued[fd].push_back(bid);
        } else {
            sending[fd] = 1;
            submit_send(fd, bid);
        }
    }

    void submit_send(int fd, unsigned bid) {
        io_uring_sqe* s = sqe();
        io_uring_prep_send(s, fd, memory + std::size_t{bid} * kBufferSize + send_offset[bid],
                           send_length[bid] - send_offset[bid], MSG_NOSIGNAL);
        io_uring_sqe_set_data64(s, tag(kSend, fd, bid));
        ++pending[fd];
    }

    // Both sockets are shut down at once, which ends their multishot receives; each is closed when
    // nothing of its own is in flight any more (so a number is never reused under a live request).
    void hang_up(int fd) {
        for (int side : {fd, peer[fd]}) {
            if (side < 0 || closing[side]) continue;
            closing[side] = 1;
            shutdown(side, SHUT_RDWR);
            close_if_idle(side);
        }
    }

    void close_if_idle(int fd) {
        if (closing[fd] && pending[fd] == 0) {
            closing[fd] = 0;
            const int other = peer[fd];
            if (other >= 0 && peer[other] == fd) peer[other] = -1;  // its number may be reused now
            peer[fd] = -1;
            sending[fd] = 0;
            for (unsigned bid : queued[fd]) give_back(bid);
            queued[fd].clear();
            close(fd);
        }
    }

    void run(int listener) {
        io_uring_params params{};
        params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN;
        if (io_uring_queue_init_params(4096, &ring, &params) != 0) die("io_uring_queue_init_params");
        const std::size_t ring_bytes = kBuffers * sizeof(io_uring_buf);
        buffers = static_cast<io_uring_buf_ring*>(
            mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0));
        memory = static_cast<char*>(std::aligned_alloc(4096, std::size_t{kBuffers} * kBufferSize));
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<uint64_t>(buffers);
        reg.ring_entries = kBuffers;
        reg.bgid = kGroup;
        if (io_uring_register_buf_ring(&ring, &reg, 0) != 0) die("io_uring_register_buf_ring");
        io_uring_buf_ring_init(buffers);
        for (unsigned bid = 0; bid < kBuffers; ++bid) give_back(bid);

        io_uring_sqe* s = sqe();
        io_uring_prep_multishot_accept(s, listener, nullptr, nullptr, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(s, tag(kAccept, listener));
        std::vector<int> starved;  // receives stopped for want of a buffer, re-armed after the turn
        for (;;) {
            if (io_uring_submit_and_wait(&ring, 1) < 0 && errno != EINTR) die("io_uring_submit_and_wait");
            unsigned head;
            unsigned seen = 0;
            io_uring_cqe* cqe;
            io_uring_for_each_cqe(&ring, head, cqe) {
                ++seen;
                handle(cqe, listener, starved);
            }
            io_uring_cq_advance(&ring, seen);
            for (int fd : starved) {
                if (!closing[fd]) arm_recv(fd);
            }
            starved.clear();
        }
    }

    void handle(io_uring_cqe* cqe, int listener, std::vector<int>& starved) {
        const uint64_t data = cqe->user_data;
        const auto op = static_cast<Op>(data >> 56);
        const int fd = static_cast<int>(data & 0xffffffffu);
        const bool more = cqe->flags & IORING_CQE_F_MORE;
        if (op == kAccept) {
            if (cqe->res >= 0) {
                const int client = cqe->res;
                const int upstream = connect_upstream();
                if (upstream < 0) {
                    close(client);
                } else {
                    peer[client] = upstream;
                    peer[upstream] = client;
                    arm_recv(client);
                    arm_recv(upstream);
                }
            }
            if (!more) {
                io_uring_sqe* s = sqe();
                io_uring_prep_multishot_accept(s, listener, nullptr, nullptr, SOCK_CLOEXEC);
                io_uring_sqe_set_data64(s, tag(kAccept, listener));
            }
            return;
        }
        if (op == kRecv) {
            if (!more) --pending[fd];
            if (cqe->res > 0) {
                const unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
                if (closing[fd] || peer[fd] < 0) {
                    give_back(bid);
                } else {
                    send_offset[bid] = 0;
                    send_length[bid] = static_cast<unsigned>(cqe->res);
                    send_or_queue(peer[fd], bid);
                }
                if (!more && !closing[fd]) arm_recv(fd);
            } else if (cqe->res == -ENOBUFS) {
                if (!more) starved.push_back(fd);
            } else {
                hang_up(fd);
            }
            close_if_idle(fd);
            return;
        }
        // kSend
        --pending[fd];
        const unsigned bid = static_cast<unsigned>((data >> 32) & 0xffff);
        if (cqe->res > 0 && !closing[fd]) {
            send_offset[bid] += static_cast<unsigned>(cqe->res);
            if (send_offset[bid] < send_length[bid]) {
                submit_send(fd, bid);
                return;
            }
        } else if (cqe->res <= 0) {
            hang_up(fd);
        }
        give_back(bid);
        sending[fd] = 0;
        if (!queued[fd].empty()) {
            const unsigned next = queued[fd].front();
            queued[fd].erase(queued[fd].begin());
            if (closing[fd]) {
                give_back(next);
                for (unsigned rest : queued[fd]) give_back(rest);
                queued[fd].clear();
            } else {
                send_or_queue(fd, next);
            }
        }
        close_if_idle(fd);
    }
};

#endif  // FLOOR_HAS_URING

}  // namespace

int main(int argc, char** argv) {
    int port = 0;
    std::string mode = "epoll";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const std::string value = argv[i + 1];
        if (flag == "--listen") {
            port = std::stoi(value.substr(value.rfind(':') + 1));
        } else if (flag == "--to") {
            std::size_t start = 0;
            for (std::size_t comma; (comma = value.find(',', start)) != std::string::npos; start = comma + 1)
                upstreams.push_back(parse_address(value.substr(start, comma - start)));
            upstreams.push_back(parse_address(value.substr(start)));
        } else if (flag == "--mode") {
            mode = value;
        }
    }
    if (port == 0 || upstreams.empty() || (mode != "epoll" && mode != "uring")) {
        std::fprintf(stderr, "usage: floor_relay --listen PORT --to HOST:PORT[,...] --mode epoll|uring\n");
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    const int listener = listen_on(port);
    if (mode == "epoll") {
        run_epoll(listener);
    } else {
#ifdef FLOOR_HAS_URING
        static Uring uring;
        uring.run(listener);
#else
        std::fprintf(stderr, "floor_relay: built without liburing (apt-get install liburing-dev)\n");
        return 2;
#endif
    }
}
