// The hook for zone transfers (implemented in xfr/): the front end recognises
// AXFR and IXFR queries and hands them over, with the client's address, instead
// of answering them itself. Over TCP the answer is a stream of messages that the
// connection writes one after another as the client reads them (backpressure:
// a slow secondary holds only its own connection, never the server); over UDP
// it is one message (IXFR's SOA-only reply, RFC 1995 section 2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "store/model.h"

namespace dns {

class MessageStream {
 public:
  virtual ~MessageStream() = default;
  // Writes the next message into `out` and returns its size; 0 once the
  // stream is done.
  virtual std::size_t next(std::span<std::uint8_t> out) = 0;
  // The RCODE of the messages (REFUSED for a refusal), for the statistics.
  virtual std::uint16_t rcode() const = 0;
};

class TransferHandler {
 public:
  virtual ~TransferHandler() = default;
  // A transfer query over TCP, `message` as received: the messages to send.
  virtual std::unique_ptr<MessageStream> transfer(std::span<const std::uint8_t> message,
                                                  const store::IpAddress& client) = 0;
  // The same over UDP: one message into `out`; returns its size (0: drop).
  virtual std::size_t answer_udp(std::span<const std::uint8_t> message,
                                 const store::IpAddress& client, std::span<std::uint8_t> out) = 0;
};

}  // namespace dns
