// The messages of one zone transfer response (RFC 5936 section 2.2, RFC 1995
// section 4): the records of a list of chunks, packed into messages of at most
// kMessageTarget bytes, owner names compressed, each message signed when the
// request was (TSIG). Produced one message at a time as the connection drains.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "dns/transfer.h"
#include "xfr/tsig.h"
#include "xfr/zone_content.h"

namespace xfr {

using RecordChunk = std::shared_ptr<const std::vector<Record>>;

class TransferStream final : public dns::MessageStream {
 public:
  // Big enough that a 100,000-instance zone takes a few hundred messages,
  // small enough that one is written while other connections wait briefly.
  static constexpr std::size_t kMessageTarget = 32 * 1024;

  // `question`: the query's question section, echoed in the first message.
  TransferStream(std::uint16_t id, std::vector<std::uint8_t> question);

  void append(RecordChunk records);
  void append(Record record);
  void sign_with(TsigSigner signer) { signer_.emplace(std::move(signer)); }

  std::size_t next(std::span<std::uint8_t> out) override;
  std::uint16_t rcode() const override { return 0; }

 private:
  std::uint16_t id_;
  std::vector<std::uint8_t> question_;
  std::vector<RecordChunk> chunks_;
  std::size_t chunk_ = 0;  // the next record: chunks_[chunk_][record_]
  std::size_t record_ = 0;
  bool first_ = true;
  std::optional<TsigSigner> signer_;
};

// One message with only a header and the echoed question (a refusal).
class RefusalStream final : public dns::MessageStream {
 public:
  RefusalStream(std::uint16_t id, std::uint16_t flags, std::vector<std::uint8_t> question,
                std::uint16_t rcode)
      : id_(id), flags_(flags), question_(std::move(question)), rcode_(rcode) {}
  // Runs on the finished message (and returns its new size): a TSIG error.
  void finish_with(std::function<std::size_t(std::span<std::uint8_t>, std::size_t)> finish) {
    finish_ = std::move(finish);
  }
  std::size_t next(std::span<std::uint8_t> out) override;
  std::uint16_t rcode() const override { return rcode_; }

 private:
  std::function<std::size_t(std::span<std::uint8_t>, std::size_t)> finish_;
  std::uint16_t id_;
  std::uint16_t flags_;  // the query's opcode and RD bits
  std::vector<std::uint8_t> question_;
  std::uint16_t rcode_;
  bool sent_ = false;
};

}  // namespace xfr
