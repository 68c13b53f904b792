// The catalog: creates and drops that stall no other call, collections whose records cannot be
// read kept apart, and the collection config's records.
#include "index/catalog.h"

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "index/collection.h"
#include "storage/fault_injection_env.h"
#include "storage/metadata_store.h"
#include "tests/index/collection_test_util.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using collection_testing::Data;
using collection_testing::Make;
using collection_testing::NewCollection;
using collection_testing::UpsertRows;
using testing::TempDir;

// A create or a drop waiting on its synced write stalls no call on the other collections: Find
// and List answer meanwhile (before, the catalog's lock was held across the write, and every
// call's Find waited for the disk). The collection being created is not listed before its
// write returns; the one being dropped refuses calls from the start of its drop. (The futures'
// deadline only turns a hang into a failure; nothing here is timed.)
TEST(Catalog, ACreateOrDropWaitingOnItsSyncStallsNoOtherCall) {
  TempDir tmp;
  FaultInjectionEnv env;
  CollectionOptions options;
  options.env = &env;
  Data d = Make(200, 1);
  auto cat = *Catalog::Open(tmp.path(), options);
  auto kept = NewCollection(cat.get(), d.base.dim, 1000000, "kept");
  auto doomed = NewCollection(cat.get(), d.base.dim, 1000000, "doomed");
  UpsertRows(kept.get(), d.base, 0, 100);
  const auto answers_while_held = [&](std::function<void()> calls) {
    std::future<void> done = std::async(std::launch::async, calls);
    const bool ready = done.wait_for(std::chrono::minutes(2)) == std::future_status::ready;
    if (!ready) env.ReleaseSyncs();  // so that the calls, and the test, finish
    done.wait();
    EXPECT_TRUE(ready) << "a call waited for the catalog's write";
  };
  const auto uses_kept = [&] {
    auto found = cat->Find("kept");
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ((*found)->Count(), 100u);
    std::vector<Hit> hits;
    EXPECT_TRUE(
        (*found)
            ->Search(VectorView{d.base.type, {d.base.row(3), d.base.row_bytes()}}, 1, {}, &hits)
            .ok());
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].id, 3u);
  };

  env.HoldSyncs(".log");
  std::thread creator([&] {
    CollectionConfig config;
    config.name = "new";
    config.dim = d.base.dim;
    config.type = ElementType::kUint8;
    EXPECT_TRUE(cat->Create(config).ok());
  });
  env.AwaitHeldSyncs(1);
  answers_while_held([&] {
    uses_kept();
    EXPECT_TRUE(absl::IsNotFound(cat->Find("new").status()));
    EXPECT_EQ(cat->List().size(), 2u);
  });
  env.ReleaseSyncs();
  creator.join();
  EXPECT_TRUE(cat->Find("new").ok());

  env.HoldSyncs(".log");
  std::thread dropper([&] { EXPECT_TRUE(cat->Drop("doomed").ok()); });
  env.AwaitHeldSyncs(1);
  answers_while_held([&] {
    uses_kept();
    const PointInput row[] = {{7, {d.base.row(7), d.base.row_bytes()}, {}}};
    std::vector<RowError> errors;
    uint64_t upserted = 0;
    EXPECT_TRUE(absl::IsNotFound(doomed->Upsert(row, &errors, &upserted)));
  });
  env.ReleaseSyncs();
  dropper.join();
  EXPECT_TRUE(absl::IsNotFound(cat->Find("doomed").status()));
  EXPECT_EQ(cat->List().size(), 2u);
}

// A drop whose write fails (a full disk) leaves the collection listed, refusing calls with an
// error that says the drop failed (not "was dropped"): the write may have reached the log. While
// the store refuses every write, a drop is refused before anything (the collection serves on).
// After a restart (the write never reached the log here) the collection is back whole, and the
// drop can be done.
TEST(Catalog, ADropWhoseWriteFailedSaysSoAndCanBeDoneAfterARestart) {
  TempDir tmp;
  FaultInjectionEnv env;
  CollectionOptions options;
  options.env = &env;
  Data d = Make(200, 1);
  {
    auto cat = *Catalog::Open(tmp.path(), options);
    auto doomed = NewCollection(cat.get(), d.base.dim, 1000000, "doomed");
    auto kept = NewCollection(cat.get(), d.base.dim, 1000000, "kept");
    UpsertRows(doomed.get(), d.base, 0, 100);
    UpsertRows(kept.get(), d.base, 0, 10);
    env.SetDiskFull(true);
    const absl::Status failed = cat->Drop("doomed");
    EXPECT_EQ(failed.code(), absl::StatusCode::kResourceExhausted) << failed;
    const PointInput row[] = {{7, {d.base.row(7), d.base.row_bytes()}, {}}};
    std::vector<RowError> errors;
    uint64_t upserted = 0;
    const absl::Status refused = doomed->Upsert(row, &errors, &upserted);
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
    EXPECT_TRUE(absl::StrContains(refused.message(), "its drop failed")) << refused;
    EXPECT_TRUE(cat->Find("doomed").ok());

    env.SetDiskFull(false);  // (the store refuses writes until it is opened again)
    const absl::Status not_now = cat->Drop("kept");
    EXPECT_EQ(not_now.code(), absl::StatusCode::kUnavailable) << not_now;
    EXPECT_EQ(kept->Count(), 10u);
    std::vector<Hit> hits;
    EXPECT_TRUE(
        kept->Search(VectorView{d.base.type, {d.base.row(3), d.base.row_bytes()}}, 1, {}, &hits)
            .ok());
  }
  {
    auto cat = *Catalog::Open(tmp.path(), options);
    auto doomed = cat->Find("doomed");
    ASSERT_TRUE(doomed.ok()) << doomed.status();
    EXPECT_EQ((*doomed)->Count(), 100u);
    const absl::Status again = cat->Drop("doomed");
    EXPECT_TRUE(again.ok()) << again;
  }
  auto cat = *Catalog::Open(tmp.path(), options);
  EXPECT_TRUE(absl::IsNotFound(cat->Find("doomed").status()));
  EXPECT_EQ(cat->List().size(), 1u);
}

// A disk with no room for what a collection reads at start (the rows written since its build)
// keeps only that collection closed: the catalog and the others open, Find says why (the disk,
// and what to do), and a restart once space is back opens it with all its rows.
TEST(Catalog, ACollectionTheDiskHasNoRoomToOpenStaysApartUntilARestart) {
  TempDir tmp;
  FaultInjectionEnv env;
  CollectionOptions options;
  options.env = &env;
  Data d = Make(600, 1);
  {
    auto cat = *Catalog::Open(tmp.path(), options);
    auto grown = NewCollection(cat.get(), d.base.dim, 100, "grown");
    UpsertRows(grown.get(), d.base, 0, 300);
    ASSERT_TRUE(grown->BuildIndex().ok());
    UpsertRows(grown.get(), d.base, 300, 300);  // (appended: their rows are read at open)
    auto other = NewCollection(cat.get(), d.base.dim, 1000000, "other");
    UpsertRows(other.get(), d.base, 0, 10);
  }
  env.SetDiskFull(true, "collections/1/appended-rows");  // (grown's)
  {
    auto cat = Catalog::Open(tmp.path(), options);
    ASSERT_TRUE(cat.ok()) << cat.status();
    const absl::Status why = (*cat)->Find("grown").status();
    EXPECT_EQ(why.code(), absl::StatusCode::kResourceExhausted) << why;
    EXPECT_TRUE(absl::StrContains(why.message(), "free disk space, then restart")) << why;
    auto other = (*cat)->Find("other");
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_EQ((*other)->Count(), 10u);
    EXPECT_EQ((*cat)->ListUnopened().size(), 1u);
  }
  env.SetDiskFull(false);
  auto cat = *Catalog::Open(tmp.path(), options);
  auto grown = cat->Find("grown");
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_EQ((*grown)->Count(), 600u);
  EXPECT_TRUE(cat->ListUnopened().empty());
}

// A collection whose own records cannot be read (a malformed version record; a version record of
// an internal id far past the others, which would have sized the id tables by it: 4 billion ids,
// or a write out of bounds at 0xFFFFFFFF) does not keep the catalog, nor the other collections,
// from opening: it stays apart, its data as it was, Find says why, its name stays taken, and
// Drop deletes it (its records and directory) and frees the name.
// A collection whose catalog record itself cannot be read (damaged: a line missing, or nothing
// left of it) is kept apart the same way: the catalog and the other collections open, Find says
// why, the name stays taken, and Drop deletes it (with its records and directory when the record
// still says its id) and frees the name.
TEST(Catalog, ACollectionWhoseCatalogRecordCannotBeReadStaysApartUntilDropped) {
  namespace fs = std::filesystem;
  const Data d = Make(300, 1);
  // What is left of the record: its id and uid; nothing; or another collection's id, which is
  // not trusted (a drop would delete that one's files).
  enum class Left { kIdAndUid, kNothing, kOthersId };
  for (const Left left : {Left::kIdAndUid, Left::kNothing, Left::kOthersId}) {
    SCOPED_TRACE(static_cast<int>(left));
    const bool says_id = left == Left::kIdAndUid;
    TempDir tmp;
    uint32_t id = 0, good_id = 0;
    std::string uid;
    {
      auto cat = *Catalog::Open(tmp.path());
      auto bad = NewCollection(cat.get(), d.base.dim, 1000000, "bad");
      UpsertRows(bad.get(), d.base, 0, 200);
      id = bad->config().id;
      uid = bad->config().uid;
      auto good = NewCollection(cat.get(), d.base.dim, 1000000, "good");
      UpsertRows(good.get(), d.base, 0, 100);
      good_id = good->config().id;
      WriteBatch batch;
      batch.Put(Cf::kCollections, "bad",
                left == Left::kNothing
                    ? std::string("\x01\x02")
                    : absl::StrCat("format=1\nname=bad\nid=", says_id ? id : good_id, "\nuid=", uid,
                                   "\ndim="));
      ASSERT_TRUE(cat->store()->Write(&batch, /*sync=*/true).ok());
    }
    const fs::path dir = fs::path(tmp.path()) / "collections" / std::to_string(id);
    auto cat = Catalog::Open(tmp.path());
    ASSERT_TRUE(cat.ok()) << cat.status();
    const auto found = (*cat)->Find("bad");
    ASSERT_TRUE(absl::IsDataLoss(found.status())) << found.status();
    EXPECT_NE(found.status().message().find("catalog record"), std::string::npos) << found.status();
    ASSERT_EQ((*cat)->ListUnopened().size(), 1u);
    EXPECT_EQ((*cat)->ListUnopened()[0].config.uid, left == Left::kNothing ? "" : uid);
    EXPECT_EQ((*cat)->ListUnopened()[0].config.id, says_id ? id : 0u);
    auto good = (*cat)->Find("good");
    ASSERT_TRUE(good.ok()) << good.status();
    EXPECT_EQ((*good)->Count(), 100u);
    EXPECT_TRUE(fs::exists(dir));  // (left for a restore)
    CollectionConfig again;
    again.name = "bad";
    again.dim = d.base.dim;
    again.type = ElementType::kUint8;
    EXPECT_TRUE(absl::IsAlreadyExists((*cat)->Create(again).status()));
    ASSERT_TRUE((*cat)->Drop("bad").ok());
    // (Without its id the drop cannot tell its directory: the next start removes it, owned by
    // none.)
    EXPECT_EQ(fs::exists(dir), !says_id);
    (*cat)->WaitForPurges();
    auto made = (*cat)->Create(again);
    ASSERT_TRUE(made.ok()) << made.status();
    EXPECT_NE((*made)->config().id, id);
    EXPECT_EQ((*made)->Count(), 0u);
    cat->reset();
    cat = Catalog::Open(tmp.path());
    ASSERT_TRUE(cat.ok()) << cat.status();
    EXPECT_TRUE((*cat)->ListUnopened().empty());
    EXPECT_EQ((*cat)->List().size(), 2u);
    EXPECT_FALSE(fs::exists(dir));
    auto kept = (*cat)->Find("good");
    ASSERT_TRUE(kept.ok()) << kept.status();
    EXPECT_EQ((*kept)->Count(), 100u);
    EXPECT_TRUE(fs::exists(fs::path(tmp.path()) / "collections" / std::to_string(good_id)));
  }
}

TEST(Catalog, ACollectionWhoseRecordsCannotBeReadStaysApartUntilDropped) {
  namespace fs = std::filesystem;
  const Data d = Make(500, 1);
  for (const uint32_t bad_id : {0xFFFFFFFFu, 1u << 26, ~0u - 5}) {
    for (const bool malformed : {false, true}) {
      if (malformed && bad_id != 0xFFFFFFFFu) continue;
      SCOPED_TRACE(::testing::Message() << bad_id << (malformed ? " malformed" : ""));
      TempDir tmp;
      uint32_t id = 0;
      {
        auto cat = *Catalog::Open(tmp.path());
        auto c = NewCollection(cat.get(), d.base.dim, 1000000);
        UpsertRows(c.get(), d.base, 0, d.base.n);
        id = c->config().id;
        CollectionConfig other;
        other.name = "other";
        other.dim = d.base.dim;
        other.type = d.base.type;
        auto o = cat->Create(other);
        ASSERT_TRUE(o.ok()) << o.status();
        UpsertRows(o->get(), d.base, 0, 100);
        std::string key;
        AppendU32(&key, id);
        AppendU32(&key, bad_id);
        WriteBatch batch;
        batch.Put(Cf::kVersions, key, malformed ? std::string("xyz") : std::string("\1\1", 2));
        ASSERT_TRUE(cat->store()->Write(&batch, /*sync=*/true).ok());
      }
      const fs::path dir = fs::path(tmp.path()) / "collections" / std::to_string(id);
      ASSERT_TRUE(fs::exists(dir));
      auto cat = Catalog::Open(tmp.path());
      ASSERT_TRUE(cat.ok()) << cat.status();
      const auto found = (*cat)->Find("c");
      ASSERT_TRUE(absl::IsDataLoss(found.status())) << found.status();
      EXPECT_NE(found.status().message().find("version record"), std::string::npos)
          << found.status();
      ASSERT_EQ((*cat)->ListUnopened().size(), 1u);
      EXPECT_EQ((*cat)->ListUnopened()[0].config.name, "c");
      ASSERT_EQ((*cat)->List().size(), 1u);
      auto o = (*cat)->Find("other");
      ASSERT_TRUE(o.ok()) << o.status();
      EXPECT_EQ((*o)->Count(), 100u);
      CollectionConfig again;
      again.name = "c";
      again.dim = d.base.dim;
      again.type = d.base.type;
      EXPECT_TRUE(absl::IsAlreadyExists((*cat)->Create(again).status()));
      // Left as it was: the next start finds it the same.
      cat->reset();
      cat = Catalog::Open(tmp.path());
      ASSERT_TRUE(cat.ok()) << cat.status();
      ASSERT_EQ((*cat)->ListUnopened().size(), 1u);
      std::string uid;
      ASSERT_TRUE((*cat)->Drop("c", &uid).ok());
      EXPECT_EQ(uid.size(), 32u);
      EXPECT_TRUE((*cat)->ListUnopened().empty());
      EXPECT_TRUE(absl::IsNotFound((*cat)->Find("c").status()));
      EXPECT_FALSE(fs::exists(dir));
      (*cat)->WaitForPurges();
      size_t left = 0;
      std::string prefix;
      AppendU32(&prefix, id);
      for (Cf cf : {Cf::kVersions, Cf::kVectors, Cf::kPostings, Cf::kHeads}) {
        ASSERT_TRUE((*cat)
                        ->store()
                        ->Scan(cf, prefix,
                               [&](auto, auto) {
                                 ++left;
                                 return absl::OkStatus();
                               })
                        .ok());
      }
      EXPECT_EQ(left, 0u);
      ASSERT_TRUE((*cat)->Create(again).ok());
      cat->reset();
      auto reopened = Catalog::Open(tmp.path());
      ASSERT_TRUE(reopened.ok()) << reopened.status();
      EXPECT_TRUE((*reopened)->ListUnopened().empty());
      EXPECT_EQ((*reopened)->List().size(), 2u);
    }
  }
}

TEST(CollectionConfig, RoundTripsAndReadsRecordsWrittenBeforeFloat16Postings) {
  CollectionConfig c;
  c.name = "x";
  c.id = 3;
  c.dim = 96;
  c.posting_encoding = PostingEncoding::kFloat16;
  auto back = CollectionConfig::Parse(c.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->posting_encoding, PostingEncoding::kFloat16);
  EXPECT_EQ(back->Serialize(), c.Serialize());
  // An older record has no posting_encoding line: native.
  std::string old = c.Serialize();
  size_t at = old.find("posting_encoding=");
  old.erase(at, old.find('\n', at) + 1 - at);
  auto parsed = CollectionConfig::Parse(old);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->posting_encoding, PostingEncoding::kNative);
  std::string bad = c.Serialize();
  bad.replace(bad.find("float16"), 7, "float99");
  EXPECT_TRUE(absl::IsDataLoss(CollectionConfig::Parse(bad).status()));
  // A learned hybrid weight round-trips; records without one (all older ones) have none.
  EXPECT_LT(parsed->hybrid_weight, 0);
  c.hybrid_weight = 0.3;
  c.hybrid_mrr = 0.875;
  c.hybrid_questions = 1024;
  back = CollectionConfig::Parse(c.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->hybrid_weight, 0.3);
  EXPECT_EQ(back->hybrid_mrr, 0.875);
  EXPECT_EQ(back->hybrid_questions, 1024u);
  std::string out_of_range = c.Serialize();
  const size_t w = out_of_range.find("hybrid_weight=");
  out_of_range.replace(w, out_of_range.find('\n', w) - w, "hybrid_weight=1.5");
  EXPECT_TRUE(absl::IsDataLoss(CollectionConfig::Parse(out_of_range).status()));
  // Text fields round-trip and are validated.
  c.text_fields = {"title", "section_2"};
  back = CollectionConfig::Parse(c.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->text_fields, c.text_fields);
  EXPECT_TRUE(c.Validate().ok());
  c.text_fields = {"a,b"};
  EXPECT_TRUE(absl::IsInvalidArgument(c.Validate()));
  c.text_fields = {""};
  EXPECT_TRUE(absl::IsInvalidArgument(c.Validate()));
  c.text_fields.assign(kMaxTextFields + 1, "f");
  EXPECT_TRUE(absl::IsInvalidArgument(c.Validate()));
}

}  // namespace
}  // namespace strata
