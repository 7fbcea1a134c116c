// The shard of an instance and the balancing rule (health_shards.h).
#include "store/health_shards.h"

#include <algorithm>
#include <map>

namespace store {

std::uint16_t health_shard_of(std::string_view service, std::string_view id) {
  std::uint32_t hash = 2166136261u;
  const auto mix = [&hash](std::string_view bytes) {
    for (const unsigned char byte : bytes) {
      hash ^= byte;
      hash *= 16777619u;
    }
  };
  mix(service);
  mix("/");
  mix(id);
  // Fold the high bits in: FNV's lowest bits alone spread less well.
  return static_cast<std::uint16_t>((hash ^ (hash >> 16) ^ (hash >> 8)) % kHealthShards);
}

namespace {

struct Balance {
  std::string_view me;
  const std::set<std::string, std::less<>>& live;
  std::vector<ShardRow> rows;

  bool is_live(std::string_view member) const {
    return !member.empty() && (member == me || live.contains(member));
  }

  // Requested shards go to a live requester once we stopped probing them; a
  // request whose requester or owner is gone lapses.
  void hand_over_and_drop_stale_requests(const ShardSet& handoff) {
    for (std::size_t shard = 0; shard < rows.size(); ++shard) {
      ShardRow& row = rows[shard];
      if (row.owner == me && handoff[shard] && row.requested_by != me &&
          is_live(row.requested_by)) {
        row.owner = row.requested_by;
        row.requested_by.clear();
      }
      if (!row.requested_by.empty() &&
          (!is_live(row.requested_by) || !is_live(row.owner) || row.requested_by == row.owner)) {
        row.requested_by.clear();
      }
    }
  }

  std::size_t participants() const {
    std::set<std::string_view> members{me};
    for (const ShardRow& row : rows) {
      if (is_live(row.owner)) members.insert(row.owner);
      if (!row.requested_by.empty()) members.insert(row.requested_by);
    }
    return members.size();
  }

  std::size_t owned_by(std::string_view member) const {
    return static_cast<std::size_t>(std::count_if(
        rows.begin(), rows.end(), [&](const ShardRow& r) { return r.owner == member; }));
  }

  std::size_t claim_orphans(std::size_t mine, std::size_t target) {
    for (ShardRow& row : rows) {
      if (mine >= target) break;
      if (is_live(row.owner)) continue;
      row.owner = std::string(me);
      row.requested_by.clear();
      ++mine;
    }
    return mine;
  }

  // Asks the fullest owners for shards until ours (held and asked for) reach
  // `floor`; an owner is never asked below `floor` itself.
  void request_up_to(std::size_t have, std::size_t floor) {
    // What each other live owner can spare: what it holds above `floor`, less
    // what others asked of it already.
    std::map<std::string_view, std::size_t> held, asked;
    for (const ShardRow& row : rows) {
      if (!is_live(row.owner) || row.owner == me) continue;
      ++held[row.owner];
      if (!row.requested_by.empty()) ++asked[row.owner];
    }
    std::map<std::string_view, std::size_t> available;
    for (const auto& [owner, count] : held) {
      available[owner] = count > floor + asked[owner] ? count - floor - asked[owner] : 0;
    }
    while (have < floor) {
      const auto donor =
          std::max_element(available.begin(), available.end(),
                           [](const auto& a, const auto& b) { return a.second < b.second; });
      if (donor == available.end() || donor->second == 0) return;
      const auto row = std::find_if(rows.begin(), rows.end(), [&](const ShardRow& r) {
        return r.owner == donor->first && r.requested_by.empty();
      });
      if (row == rows.end()) return;
      row->requested_by = std::string(me);
      --donor->second;
      ++have;
    }
  }
};

}  // namespace

ShardPlan plan_shards(std::string_view me, const std::set<std::string, std::less<>>& live,
                      std::span<const ShardRow> rows, const ShardSet& handoff) {
  Balance balance{me, live, std::vector<ShardRow>(rows.begin(), rows.end())};
  balance.hand_over_and_drop_stale_requests(handoff);
  ShardPlan plan;
  plan.view.participants = balance.participants();
  const std::size_t total = balance.rows.size();
  const std::size_t floor = total / plan.view.participants;
  const std::size_t target = (total + plan.view.participants - 1) / plan.view.participants;
  const std::size_t mine = balance.claim_orphans(balance.owned_by(me), target);
  const auto asked = static_cast<std::size_t>(
      std::count_if(balance.rows.begin(), balance.rows.end(),
                    [&](const ShardRow& r) { return r.requested_by == me; }));
  if (mine + asked < floor) balance.request_up_to(mine + asked, floor);

  for (std::size_t shard = 0; shard < total && shard < kHealthShards; ++shard) {
    const ShardRow& row = balance.rows[shard];
    if (row.owner == me) {
      plan.view.owned.set(shard);
      if (!row.requested_by.empty()) plan.view.requested.set(shard);
    }
    if (row != rows[shard]) plan.updates.emplace_back(static_cast<std::uint16_t>(shard), row);
  }
  return plan;
}

}  // namespace store
