#pragma once
// LeaseWaiter: a request parked until a global rate limit's tokens arrive from Redis. It lives in
// the request's context (no allocation) and sits in an intrusive circular list, so the session can
// leave the queue in O(1) when it closes first. Worker thread only.
namespace frontdoor::ratelimit {

struct LeaseWaiter {
  LeaseWaiter() noexcept = default;
  // A copy is a new waiter, in no queue (copying a request context copies no place in line).
  LeaseWaiter(const LeaseWaiter& other) noexcept : wake(other.wake), owner(other.owner) {}
  LeaseWaiter& operator=(const LeaseWaiter& other) noexcept {
    wake = other.wake;
    owner = other.owner;
    return *this;
  }
  ~LeaseWaiter() { unlink(); }

  bool waiting() const noexcept { return next != this; }
  void unlink() noexcept {
    prev->next = next;
    next->prev = prev;
    prev = next = this;
  }
  // Appends this to the list whose sentinel is `list`.
  void enqueue(LeaseWaiter& list) noexcept {
    unlink();
    prev = list.prev;
    next = &list;
    list.prev->next = this;
    list.prev = this;
  }
  // Moves every waiter of `from` to the end of this list (a sentinel).
  void splice_from(LeaseWaiter& from) noexcept {
    while (from.waiting()) from.next->enqueue(*this);
  }

  LeaseWaiter* prev = this;
  LeaseWaiter* next = this;
  void (*wake)(LeaseWaiter&) = nullptr;  // resumes the request: it asks the limiter again
  void* owner = nullptr;                 // for `wake`
};

}  // namespace frontdoor::ratelimit
