#pragma once
// Waiter: a request parked until something it needs is ready — a global rate limit's tokens from
// Redis, a connection under the cluster's max_connections. It lives in the session (no allocation)
// and sits in an intrusive circular list, so the session can leave the queue in O(1) when it closes
// first. Worker thread only.
namespace frontdoor {

struct Waiter {
  Waiter() noexcept = default;
  // A copy is a new waiter, in no queue (copying a request context copies no place in line).
  Waiter(const Waiter& other) noexcept : wake(other.wake), owner(other.owner) {}
  Waiter& operator=(const Waiter& other) noexcept {
    wake = other.wake;
    owner = other.owner;
    return *this;
  }
  ~Waiter() { unlink(); }

  bool waiting() const noexcept { return next != this; }
  void unlink() noexcept {
    prev->next = next;
    next->prev = prev;
    prev = next = this;
  }
  // Appends this to the list whose sentinel is `list`.
  void enqueue(Waiter& list) noexcept {
    unlink();
    prev = list.prev;
    next = &list;
    list.prev->next = this;
    list.prev = this;
  }
  // Moves every waiter of `from` to the end of this list (a sentinel).
  void splice_from(Waiter& from) noexcept {
    while (from.waiting()) from.next->enqueue(*this);
  }

  Waiter* prev = this;
  Waiter* next = this;
  void (*wake)(Waiter&) = nullptr;  // resumes the request: it asks again
  void* owner = nullptr;             // for `wake`
};

}  // namespace frontdoor
