// Opening a collection (CollectionImpl::Load): its records read from the metadata store, its
// index generation opened, and what posting maintenance stored laid over it; damage to the index
// (a file, or a maintenance record) opens the collection with its index damaged
// (MarkIndexDamaged), and damage to the collection's own records fails the open (DataLoss: the
// catalog keeps it apart, Catalog::ListUnopened). The rest of CollectionImpl is in collection.cc.
#include <algorithm>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "index/internal/collection_impl.h"
#include "index/internal/ids_file.h"
#include "index/tenant_extent.h"
#include "storage/log.h"
#include "storage/status_macros.h"

namespace strata::collection_internal {

namespace fs = std::filesystem;

absl::Status CollectionImpl::Load() {
  MutexLock write_lock(&write_mu_);
  WriterMutexLock lock(&mu_);
  const uint32_t coll = config_.id;
  // Versions: one record per internal id ever used. Ids are handed out in order, so the records
  // are nearly dense (a write that failed leaves its ids unused); an id far past the records
  // read is damage, refused before the tables are sized by it.
  uint64_t versions_read = 0;
  RETURN_IF_ERROR(store_->Scan(Cf::kVersions, CollPrefix(coll), [&](auto key, auto value) {
    mu_.AssertHeld();  // Load's
    if (key.size() != 8 || value.size() != 2) {
      return absl::DataLossError(
          absl::StrCat("collection '", config_.name, "': malformed version record"));
    }
    VectorId id = ReadU32(key, 4);
    if (id >= 2 * versions_read + kMostIdsSkipped) {
      return absl::DataLossError(absl::StrCat("collection '", config_.name,
                                              "': version record of internal id ", id, " after ",
                                              versions_read, " records"));
    }
    ++versions_read;
    if (ids_.size() <= id) ids_.resize(size_t{id} + 1);
    ids_[id].version = static_cast<uint8_t>(value[0]);
    ids_[id].flags = static_cast<uint8_t>(value[1]) & kLive;
    if (ids_[id].flags & kLive) ++live_;
    return absl::OkStatus();
  }));
  ext_of_.assign(ids_.size(), 0);
  RETURN_IF_ERROR(
      store_->Scan(Cf::kIdMap, absl::StrCat("i", CollPrefix(coll)), [&](auto key, auto value) {
        mu_.AssertHeld();  // Load's
        if (key.size() != 9 || value.size() != 8) {
          return absl::DataLossError(
              absl::StrCat("collection '", config_.name, "': malformed id map record"));
        }
        VectorId id = ReadU32(key, 5);
        if (id >= ext_of_.size()) {
          return absl::DataLossError(absl::StrCat("collection '", config_.name, "': internal id ",
                                                  id, " has no version record"));
        }
        ext_of_[id] = ReadU64(value, 0);
        return absl::OkStatus();
      }));
  RETURN_IF_ERROR(tenants_.Load(*store_, ids_.size(), [&](VectorId id) {
    mu_.AssertHeld();  // Load's
    return (ids_[id].flags & kLive) != 0;
  }));
  RETURN_IF_ERROR(CheckExtents());
  RETURN_IF_ERROR(RebuildTextIndex());

  // Leftovers of interrupted builds or drops: anything but the current generation (and the
  // tenants' extents' files, which CheckExtents has kept or removed).
  // The directory's own name is durable once its parent is synced: at every open, in case an
  // earlier run stopped between the two.
  RETURN_IF_ERROR(CreateDirs(env_, dir_));
  RETURN_IF_ERROR(env_.SyncDir(fs::path(dir_).parent_path().string()));
  const std::string current = absl::StrCat("index-", generation_);
  ASSIGN_OR_RETURN(std::vector<std::string> entries, env_.GetChildren(dir_));
  for (const std::string& name : entries) {
    if ((generation_ != 0 && name == current) || TenantExtents::IsFileName(name)) continue;
    const std::string path = (fs::path(dir_) / name).string();
    // (The rows' file is scratch, made again below: whatever an earlier run left under its name,
    // a file, a link (the link goes, not what it names) or a directory, is removed first.)
    if (name != kAppendedRowsFile) {
      Log(LogLevel::kWarning, "collection '%s': removing leftover %s (an interrupted build)",
          config_.name, path);
    }
    RETURN_IF_ERROR(env_.RemoveTree(path));
  }
  RETURN_IF_ERROR(appended_.Open(env_, (fs::path(dir_) / kAppendedRowsFile).string()));

  if (generation_ != 0) {
    absl::Status opened = OpenGeneration();
    if (!opened.ok() && live_ == 0) {
      // Nothing to rebuild from, and nothing lost: start over as an empty FLAT collection (the
      // next build's Install removes the damaged directory).
      Log(LogLevel::kWarning,
          "collection '%s': index generation %d is damaged (%s) but the collection holds no live "
          "vectors: it starts over without an index",
          config_.name, generation_, opened.message());
      base_.reset();
      for (IdState& st : ids_) st.flags &= kLive;
      indexed_ = 0;
    } else if (!opened.ok()) {
      MarkIndexDamaged(opened.message());
      return absl::OkStatus();
    }
  }
  // A vector's row in memory, from the store: as written, or for a vector the built index
  // serves, as the built index scores it (BuiltForm).
  std::vector<uint8_t> pf, rounded;
  const auto load_row = [&](VectorId id) -> absl::Status {
    mu_.AssertHeld();  // Load's
    auto raw = store_->Get(Cf::kVectors, IdKey(coll, id));
    if (!raw.ok() || raw->size() != row_bytes_) {
      return absl::DataLossError(absl::StrCat("collection '", config_.name, "': vector of id ",
                                              ext_of_[id], " is missing or malformed"));
    }
    pf.resize(row_bytes_);
    ToPostingForm(reinterpret_cast<const uint8_t*>(raw->data()), pf.data());
    RETURN_IF_ERROR(appended_.Reserve(1));
    appended_.PutRow(id, BaseEntryLive(id) ? BuiltForm(pf.data(), &rounded) : pf.data());
    return absl::OkStatus();
  };
  // Vectors the built index does not serve.
  for (VectorId id = 0; id < ids_.size(); ++id) {
    if ((ids_[id].flags & kLive) && !BaseEntryLive(id)) RETURN_IF_ERROR(load_row(id));
  }
  if (base_ != nullptr) {
    // What posting maintenance stored (heads, posting entries) is derived from the vectors: a
    // record of it that cannot be read damages the index, which a rebuild replaces (its install
    // deletes every such record), as a damaged index file does.
    const absl::Status maintained = LoadMaintenance(load_row);
    if (absl::IsDataLoss(maintained)) {
      MarkIndexDamaged(maintained.message());
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(maintained);
  }
  RebuildSkipBits();
  if (base_ != nullptr) {
    // What maintenance was queued is not stored: the postings that call for it are found again
    // (a step a crash cut short was rolled back whole, and is done again).
    NotePostings(ServingHeads(), /*shrunk=*/true);
  }
  Log(LogLevel::kInfo,
      "collection '%s': %d live vectors, %d in index generation %d, %d appended, %d heads added "
      "and %d retired by posting maintenance",
      config_.name, live_, indexed_, generation_, appended_.size(), heads_overlay_.added(),
      heads_overlay_.retired());
  return absl::OkStatus();
}

void CollectionImpl::MarkIndexDamaged(absl::string_view why) {
  base_.reset();
  for (IdState& st : ids_) st.flags &= kLive;
  indexed_ = 0;
  heads_overlay_.Clear(nullptr);
  heads_overlay_.Freeze();
  appended_radius_.Clear();
  appended_.Clear();
  damage_ =
      absl::DataLossError(absl::StrCat("index generation ", generation_, " is damaged: ", why));
  Log(LogLevel::kError,
      "collection '%s': %s. Its vectors are safe in the metadata store; searches and writes "
      "fail until the index is rebuilt from them (automatic unless --auto_repair=false; "
      "`strata-cli repair %s`)",
      config_.name, damage_.message(), config_.name);
}

absl::Status CollectionImpl::LoadMaintenance(
    const std::function<absl::Status(VectorId)>& load_row) {
  const uint32_t coll = config_.id;
  {
    RETURN_IF_ERROR(LoadHeads());
    // Entries as stores before the per-vector records held them (one key per entry): read, then
    // rewritten as records below.
    struct LegacyEntry {
      VectorId id;
      uint32_t posting;
      uint8_t version;
    };
    std::vector<LegacyEntry> legacy;
    std::vector<std::string> legacy_keys, stale_keys;
    // Whether entries of `id` at `version` serve: the vector is live at that version.
    const auto current = [&](VectorId id, uint8_t version) {
      mu_.AssertHeld();  // Load's
      return id < ids_.size() && (ids_[id].flags & kLive) && ids_[id].version == version;
    };
    RETURN_IF_ERROR(store_->Scan(Cf::kPostings, CollPrefix(coll), [&](auto key, auto value) {
      mu_.AssertHeld();  // Load's
      if (key.size() == kLegacyPostingKeyBytes && value.size() == 1) {
        legacy.push_back({ReadU32(key, 8), ReadU32(key, 4), static_cast<uint8_t>(value[0])});
        legacy_keys.emplace_back(key);
        return absl::OkStatus();
      }
      if (key.size() != 8 || value.empty() || (value.size() - 1) % 4 != 0) {
        return absl::DataLossError(
            absl::StrCat("collection '", config_.name, "': malformed posting record"));
      }
      const VectorId id = ReadU32(key, 4);
      const auto version = static_cast<uint8_t>(value[0]);
      if (!current(id, version)) {
        stale_keys.emplace_back(key);  // (none is written; gone if found)
        return absl::OkStatus();
      }
      for (size_t at = 1; at < value.size(); at += 4) {
        appended_.AddEntry(ReadU32(value, at), id, version);
      }
      return absl::OkStatus();
    }));
    if (!legacy.empty() || !stale_keys.empty()) {
      // One record per live vector, of its entries at its version (the others were stale, and
      // stay out of memory too: a record rewritten from memory would bring them back).
      WriteBatch batch;
      for (const std::string& k : legacy_keys) batch.Delete(Cf::kPostings, k);
      for (const std::string& k : stale_keys) batch.Delete(Cf::kPostings, k);
      absl::flat_hash_map<VectorId, std::vector<uint32_t>> records;
      for (const LegacyEntry& e : legacy) {
        if (!current(e.id, e.version)) continue;
        appended_.AddEntry(e.posting, e.id, e.version);
        records[e.id].push_back(e.posting);
      }
      for (const auto& [id, postings] : records) {
        batch.Put(Cf::kPostings, IdKey(coll, id), PostingsValue(ids_[id].version, postings));
      }
      RETURN_IF_ERROR(store_->Write(&batch, /*sync=*/true));
      Log(LogLevel::kInfo,
          "collection '%s': %d posting entries stored one key each rewritten as %d per-vector "
          "records (%d stale records deleted)",
          config_.name, legacy.size(), records.size(), stale_keys.size());
    }
    // Built vectors a split gave an entry in a new posting: their rows too.
    for (VectorId id = 0; id < ids_.size(); ++id) {
      if ((ids_[id].flags & kLive) && !appended_.HasRow(id) && !appended_.PostingsOf(id).empty()) {
        RETURN_IF_ERROR(load_row(id));
      }
    }
    // Each appended vector's primary: the posting of the nearest head it has an entry in.
    appended_.ForEachRow([&](VectorId id, const uint8_t* row) {
      mu_.AssertHeld();  // Load's
      uint32_t primary = 0;
      float best = std::numeric_limits<float>::infinity();
      for (uint32_t q : appended_.PostingsOf(id)) {
        const uint8_t* head = HeadRow(q);
        if (head == nullptr) continue;
        const float d = dist_(row, head, config_.dim);
        if (d < best) {
          best = d;
          primary = q;
        }
      }
      if (best < std::numeric_limits<float>::infinity()) {
        appended_.MakePrimary(id, primary);  // (the store lists a vector's postings by number)
        GrowRadius(primary, row);
      }
    });
  }
  return absl::OkStatus();
}

absl::Status CollectionImpl::RebuildTextIndex() {
  text_ = TextIndex();
  if (!options_.payload_text) return absl::OkStatus();
  const uint32_t coll = config_.id;
  // The lexical index is derived from the stored payloads (text_index.h): rebuilt here,
  // analysed in parallel a batch at a time.
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t text_bytes = 0;
  // Texts to analyse, a batch of at most kBatchBytes at a time.
  constexpr size_t kBatchBytes = 32 << 20;
  std::vector<std::pair<VectorId, std::string>> batch;
  size_t batch_bytes = 0;
  std::vector<std::vector<std::string>> terms;
  const auto index_batch = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    terms.assign(batch.size(), {});
#pragma omp parallel for schedule(dynamic, 64)
    for (size_t i = 0; i < batch.size(); ++i) terms[i] = AnalyzeText(batch[i].second);
    for (size_t i = 0; i < batch.size(); ++i) text_.Put(batch[i].first, terms[i]);
    batch.clear();
    batch_bytes = 0;
  };
  RETURN_IF_ERROR(store_->Scan(Cf::kPayloads, CollPrefix(coll), [&](auto key, auto value) {
    mu_.AssertHeld();  // RebuildTextIndex's caller's
    if (key.size() != 8) {
      return absl::DataLossError(
          absl::StrCat("collection '", config_.name, "': malformed payload record"));
    }
    const VectorId id = ReadU32(key, 4);
    if (id >= ids_.size() || !(ids_[id].flags & kLive)) return absl::OkStatus();
    text_bytes += value.size();
    std::string text = options_.payload_text(value, config_.text_fields);
    batch_bytes += text.size();
    batch.emplace_back(id, std::move(text));
    if (batch_bytes >= kBatchBytes) index_batch();
    return absl::OkStatus();
  }));
  index_batch();
  if (text_.documents() > 0) {
    Log(LogLevel::kInfo,
        "collection '%s': lexical index of %d points (%d terms, %.1f MiB) rebuilt from %.1f MiB "
        "of payloads in %.2f s",
        config_.name, text_.documents(), text_.terms(), text_.MemoryBytes() / 1048576.0,
        text_bytes / 1048576.0,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (options_.max_text_index_bytes > 0 && text_.MemoryBytes() > options_.max_text_index_bytes) {
    Log(LogLevel::kWarning,
        "collection '%s': its lexical index holds %.1f MiB, past its limit of %.1f MiB "
        "(--max_text_index_mb): every stored text is indexed, and upserts with text are refused "
        "until it is under the limit",
        config_.name, text_.MemoryBytes() / 1048576.0, options_.max_text_index_bytes / 1048576.0);
  }
  return absl::OkStatus();
}

absl::Status CollectionImpl::OpenGeneration() {
  std::string gdir = GenerationDir(dir_, generation_);
  ASSIGN_OR_RETURN(base_, SpannIndex::Open(gdir, options_.open));
  seed_radius_ = SeedRadiusOf(*base_);
  std::vector<VectorId> ids;
  std::vector<uint8_t> versions;
  RETURN_IF_ERROR(internal::ReadIdsFile(gdir, &ids, &versions));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= ids_.size()) {
      return absl::DataLossError(
          absl::StrCat(gdir, "/", internal::kIdsFile, ": id ", ids[i], " is unknown"));
    }
    ids_[ids[i]].flags |= kInBase;
    ids_[ids[i]].base_version = versions[i];
  }
  indexed_ = ids.size();
  return absl::OkStatus();
}

absl::Status CollectionImpl::LoadHeads() {
  heads_overlay_.Clear(base_->head_graph());
  absl::Status read = store_->Scan(Cf::kHeads, CollPrefix(config_.id), [&](auto key, auto value) {
    mu_.AssertHeld();  // Load's
    if (key.size() != 8 || (!value.empty() && value.size() != row_bytes_)) {
      return absl::DataLossError(
          absl::StrCat("collection '", config_.name, "': malformed head record"));
    }
    const uint32_t head = ReadU32(key, 4);
    const uint32_t built = heads_overlay_.built_heads();
    // (Added heads are numbered from `built` up, a number per head a step adds: one past 2^31
    // would take billions of steps, and is refused as corrupt, since the overlay keeps a slot
    // per number.)
    if (value.empty() ? head >= built
                      : head < built || head >= (1u << 31) || heads_overlay_.IsAdded(head)) {
      return absl::DataLossError(absl::StrCat("collection '", config_.name, "': head record ", head,
                                              " does not fit index generation ", generation_, " (",
                                              built, " heads)"));
    }
    if (value.empty()) {
      heads_overlay_.Retire(head);
    } else {
      heads_overlay_.Add(head, reinterpret_cast<const uint8_t*>(value.data()));
    }
    return absl::OkStatus();
  });
  heads_overlay_.Freeze();  // (steps copy it)
  return read;
}

void CollectionImpl::NoteReadDamage(const absl::Status& s) const {
  MutexLock lock(&read_damage_mu_);
  if (!read_damage_.empty()) return;
  read_damage_ = absl::StrCat("index generation ", generation_, ": ", s.message(),
                              " (searches reading it fail with DATA_LOSS; the rest are served)");
  Log(LogLevel::kError,
      "collection '%s': %s. Its vectors are safe in the metadata store; a rebuild from them "
      "repairs it (automatic unless --auto_repair=false; `strata-cli repair %s`)",
      config_.name, read_damage_, config_.name);
}

absl::Status CollectionImpl::CheckServing() const {
  if (damage_.ok()) return absl::OkStatus();
  const char* rebuilt = building_ ? "; it is being rebuilt from its stored vectors" : "";
  return WithPublicMessage(
      absl::FailedPreconditionError(
          absl::StrCat("collection '", config_.name, "' is damaged (", damage_.message(), ")",
                       building_ ? rebuilt
                                 : "; rebuild it from its stored vectors with `strata-cli repair " +
                                       config_.name + "` (the BuildIndex call)")),
      absl::StrCat("collection '", config_.name,
                   "' is damaged: its index refuses searches and writes until it is rebuilt",
                   *rebuilt != 0 ? rebuilt : " (its administrator has been told)"));
}

// The drop's state (Catalog::Drop).
void CollectionImpl::DropCommitted() {
  drop_committed_.store(true);
  MutexLock lock(&drop_failed_mu_);
  drop_failed_.clear();  // (an earlier try's)
}

void CollectionImpl::DropFailed(const absl::Status& why) {
  MutexLock lock(&drop_failed_mu_);
  drop_failed_ = std::string(why.message());
}

absl::Status CollectionImpl::CheckNotDropped() const {
  if (!dropped_.load()) return absl::OkStatus();
  MutexLock lock(&drop_failed_mu_);
  if (drop_failed_.empty()) {
    return absl::NotFoundError(absl::StrCat("collection '", config_.name, "' was dropped"));
  }
  const std::string undecided = absl::StrCat(
      "collection '", config_.name, "' refuses calls: its drop failed",
      "; whether it took effect is decided when it is dropped again or the server restarts");
  return WithPublicMessage(
      absl::FailedPreconditionError(absl::StrCat(undecided, " (", drop_failed_, ")")), undecided);
}

}  // namespace strata::collection_internal
