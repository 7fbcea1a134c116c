#include "xfr/transfer_stream.h"

#include <algorithm>
#include <ctime>

#include "dns/message_builder.h"

namespace xfr {

TransferStream::TransferStream(std::uint16_t id, std::vector<std::uint8_t> question)
    : id_(id), question_(std::move(question)) {}

void TransferStream::append(RecordChunk records) {
  if (records && !records->empty()) chunks_.push_back(std::move(records));
}

void TransferStream::append(Record record) {
  chunks_.push_back(std::make_shared<const std::vector<Record>>(1, std::move(record)));
}

std::size_t TransferStream::next(std::span<std::uint8_t> out) {
  if (chunk_ >= chunks_.size()) return 0;
  const std::size_t reserve = signer_ ? kTsigReserve : 0;
  const std::size_t limit = std::min(out.size(), kMessageTarget + reserve) - reserve;
  dns::MessageBuilder message(out, limit);
  // RFC 5936 section 2.2.1: the question in the first message only.
  const std::span<const std::uint8_t> question =
      first_ ? std::span<const std::uint8_t>(question_) : std::span<const std::uint8_t>();
  if (!message.start(id_, dns::flag::qr | dns::flag::aa, question)) return 0;
  first_ = false;
  std::size_t added = 0;
  while (chunk_ < chunks_.size()) {
    const Record& record = (*chunks_[chunk_])[record_];
    dns::Name owner;
    const auto wire =
        std::span(reinterpret_cast<const std::uint8_t*>(record.owner.data()), record.owner.size());
    dns::read_name(wire, 0, dns::Compression::forbidden, &owner);
    const auto rdata =
        std::span(reinterpret_cast<const std::uint8_t*>(record.rdata.data()), record.rdata.size());
    if (!message.add_record(dns::Section::answer, dns::Owner::name(owner), record.type,
                            dns::rrclass::in, record.ttl, rdata)) {
      if (added == 0) return 0;  // cannot happen: a record is far below a message
      break;
    }
    ++added;
    if (++record_ == chunks_[chunk_]->size()) {
      record_ = 0;
      ++chunk_;
    }
  }
  const std::size_t size = message.finish(nullptr);
  if (!signer_) return size;
  return signer_->sign(out, size, std::time(nullptr));
}

std::size_t RefusalStream::next(std::span<std::uint8_t> out) {
  if (sent_) return 0;
  sent_ = true;
  dns::MessageBuilder message(out, out.size());
  const auto flags = static_cast<std::uint16_t>(dns::flag::qr | (flags_ & 0x7800) |
                                                (flags_ & dns::flag::rd) | rcode_);
  if (!message.start(id_, flags, question_)) return 0;
  const std::size_t size = message.finish(nullptr);
  return finish_ ? finish_(out, size) : size;
}

}  // namespace xfr
