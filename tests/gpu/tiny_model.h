// Tiny random BERT models written on the fly in the real formats (config.json, vocab.txt,
// model.safetensors, sentence-transformers pooling files), so the loader and the forward pass are
// tested on every machine, plus a plain double-precision reference forward to check them against.
#ifndef STRATA_TESTS_GPU_TINY_MODEL_H_
#define STRATA_TESTS_GPU_TINY_MODEL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gpu/backend.h"
#include "gpu/dtype.h"

namespace strata::testing {

struct TinyBertSpec {
  int hidden = 32;
  int layers = 2;
  int heads = 4;
  int intermediate = 64;
  int max_positions = 64;
  bool cls_pooling = false;
  bool normalize = true;
  // A cross-encoder: BertForSequenceClassification with one output (pooler and classifier
  // tensors, the body under "bert.").
  bool classifier = false;
  gpu::DType dtype = gpu::DType::kF32;  // storage type of the weights
  uint64_t seed = 7;
  // Tensors left out, or written with a wrong shape, to test the loader's errors.
  std::vector<std::string> omit;
  std::vector<std::string> misshape;
};

// The weights as written (after rounding to spec.dtype), by Hugging Face name.
using TinyWeights = std::map<std::string, std::vector<float>>;

// Writes the model into `dir` (which must exist). The vocabulary covers [PAD], [UNK], [CLS],
// [SEP], [MASK], the ASCII letters and digits, some punctuation, a few words and "##" pieces.
absl::Status WriteTinyBert(const std::string& dir, const TinyBertSpec& spec, TinyWeights* weights);

// Reference forward of the model for one token sequence ([CLS] ... [SEP]): the pooled (and
// normalised, per spec) sentence embedding, computed naively in double precision.
std::vector<float> ReferenceEmbedding(const TinyBertSpec& spec, const TinyWeights& w,
                                      const std::vector<int32_t>& ids);

// Reference score of a classifier model (spec.classifier) for a pair tokenized by
// Encoder::TokenizePair (ids >= vocab_size are the second text's, token type 1): the classifier's
// logit over the pooler's tanh of the [CLS] output, in double precision.
double ReferenceCrossScore(const TinyBertSpec& spec, const TinyWeights& w,
                           const std::vector<int32_t>& pair_ids, int vocab_size);

// Cosine similarity of two n-vectors, in double precision.
double Cosine(const float* a, const float* b, int n);

// The directory of a fetched real model (tools/fetch-models.sh): $STRATA_MODELS_DIR/<name>, else
// models/<name> in the checkout. Empty when it is not there (tests then skip, saying so).
std::string RealModelDir(const std::string& name);

// The path of a fetched real model's file, <models>/<name>/<file> as above; empty when absent.
std::string RealModelFile(const std::string& name, const std::string& file);

// A fixture file under tests/gpu/data.
std::string FixturePath(const std::string& name);

// The encoder on `backend` (activations in `dtype`) against the references: the worst cosine over
// a few texts embedded with a tiny random BERT written into `dir` (mean, then CLS pooling), and
// over the first `limit` sentences of the sentence-transformers fixture with the real MiniLM in
// `model_dir`. `make` is called once per encoder opened.
using BackendFactory = absl::StatusOr<std::unique_ptr<gpu::Backend>> (*)();
absl::StatusOr<double> TinyEncoderWorstCosine(BackendFactory make, gpu::DType dtype,
                                              const std::string& dir);
absl::StatusOr<double> MiniLmWorstCosine(BackendFactory make, gpu::DType dtype,
                                         const std::string& model_dir, size_t limit);

}  // namespace strata::testing

#endif  // STRATA_TESTS_GPU_TINY_MODEL_H_
