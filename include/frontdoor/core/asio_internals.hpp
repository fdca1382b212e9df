#pragma once
// The one place that says whether frontdoor may rely on Asio's internals (epoll reactor, socket
// state bits) as they were read from Boost 1.81's sources. Code that reaches into boost::asio::detail
// does so only under FRONTDOOR_ASIO_INTERNALS, and behaves as plain Asio otherwise, so another Boost
// (or the io_uring backend) builds and runs, only without the saved system calls.
#include <boost/asio/detail/config.hpp>
#include <boost/version.hpp>

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#define FRONTDOOR_ASIO_INTERNALS 1
#else
#define FRONTDOOR_ASIO_INTERNALS 0
#endif
