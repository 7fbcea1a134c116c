// Check records: each judgement leaves one pending CheckRecord per instance
// (a later one overwrites it); every record_flush_period the pending ones go to
// the writer as one RecordChecks transaction. A record that moves the failure
// count goes within kUrgentFlush instead: the count is what the next owner of
// the instance's shard continues from if this daemon dies.
#include <spdlog/spdlog.h>

#include <limits>

#include "health/checker_impl.h"

namespace health {
namespace {

using boost::system::error_code;

constexpr std::uint32_t kDeadRecord = std::numeric_limits<std::uint32_t>::max();
constexpr auto kUrgentFlush = std::chrono::milliseconds(50);

}  // namespace

void Checker::Impl::record(std::uint32_t slot, store::TimePoint now) {
  Tracked& tracked = slots_[slot];
  if (tracked.count.failures() != tracked.recorded_failures) {
    tracked.recorded_failures = tracked.count.failures();
    arm_urgent_flush();
  }
  if (tracked.pending_record >= 0) {
    store::CheckRecord& pending = records_[static_cast<std::size_t>(tracked.pending_record)];
    pending.checked_at = now;
    pending.consecutive_failures = tracked.count.failures();
    pending.renewals = tracked.renewals;
    return;
  }
  tracked.pending_record = static_cast<std::int64_t>(records_.size());
  records_.push_back(
      {tracked.service, tracked.id, now, tracked.count.failures(), tracked.renewals});
  record_slots_.push_back(slot);
}

void Checker::Impl::drop_record(Tracked& tracked) {
  if (tracked.pending_record < 0) return;
  record_slots_[static_cast<std::size_t>(tracked.pending_record)] = kDeadRecord;
  tracked.pending_record = -1;
}

void Checker::Impl::flush_records(std::function<void()> committed) {
  if (records_.empty()) {
    if (committed) committed();
    return;
  }
  store::RecordChecks batch;
  batch.records.reserve(records_.size());
  for (std::size_t i = 0; i < records_.size(); ++i) {
    const std::uint32_t slot = record_slots_[i];
    if (slot == kDeadRecord) continue;
    if (slots_[slot].pending_record == static_cast<std::int64_t>(i)) {
      slots_[slot].pending_record = -1;
    }
    batch.records.push_back(std::move(records_[i]));
  }
  records_.clear();
  record_slots_.clear();
  if (batch.records.empty()) {
    if (committed) committed();
    return;
  }
  writer_.submit(std::move(batch), [self = shared_from_this(), committed = std::move(committed)](
                                       const store::MutationResult& r) {
    if (r.outcome == store::Outcome::failed) {
      logger()->warn("writing check records failed: {}", r.error);
    } else {
      self->stats_record_batches_.fetch_add(1);
    }
    if (committed) committed();
  });
}

void Checker::Impl::arm_urgent_flush() {
  if (stopping_ || urgent_flush_armed_) return;
  urgent_flush_armed_ = true;
  urgent_flush_timer_.expires_after(kUrgentFlush);
  urgent_flush_timer_.async_wait([self = shared_from_this()](const error_code& error) {
    self->urgent_flush_armed_ = false;
    if (error || self->stopping_) return;
    self->flush_records();
  });
}

void Checker::Impl::arm_flush() {
  if (stopping_) return;
  flush_timer_.expires_after(options_.record_flush_period);
  flush_timer_.async_wait([self = shared_from_this()](const error_code& error) {
    if (error || self->stopping_) return;
    self->flush_records();
    self->arm_flush();
  });
}

}  // namespace health
