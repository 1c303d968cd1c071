// A synthetic vision-language task CompactLM renders itself: images of coloured shapes on a 3x3
// grid, questions about them, one-word answers (and a multi-word description for long
// generation). Most of an image is background, so visual tokens are redundant, as in real VLMs;
// evicting the wrong ones changes the answer.
//
//   [<image> x tokens] what color is the circle ?  red <eos>
//   [<image> x tokens] describe ?  red circle top , blue square center <eos>
//
// Scenes are split by a hash of their content: about 10% (the test split) never occur in
// training, so test accuracy measures generalisation, not memory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"
#include "util/rng.h"

namespace clm {

struct ShapesConfig {
  int64_t image = 24;        // pixels per side (3x3 cells of image/3)
  int64_t max_objects = 3;   // 1..3 objects per scene, distinct shapes and colours
  double noise = 0.05;       // uniform background noise amplitude
};

struct ShapesExample {
  std::vector<float> pixels;        // [image, image, 3] in [0, 1]
  std::vector<std::string> question;  // words, ending with "?"
  std::vector<std::string> answer;    // one word, or the description
  std::string kind;                 // color | shape | count | where | exists | describe
};

class ShapesTask {
 public:
  explicit ShapesTask(ShapesConfig c = {});
  const ShapesConfig& config() const { return cfg_; }
  // The word vocabulary: <eos>, <unk>, <image> (id 2), then the question and answer words.
  const std::vector<std::string>& vocabulary() const { return vocab_; }
  int32_t id(const std::string& word) const;  // throws for a word outside the vocabulary
  static constexpr int32_t kImageId = 2;
  static const std::vector<std::string>& kinds();

  // One example from the train or test split; kind "" draws one of the five short kinds.
  ShapesExample sample(Rng& rng, bool test_split, const std::string& kind = "") const;
  // The prompt ids: tokens x <image>, the question; the answer ids end with <eos>.
  std::vector<int32_t> prompt_ids(const ShapesExample& e, int64_t image_tokens) const;
  std::vector<int32_t> answer_ids(const ShapesExample& e) const;

  // A training batch of B sequences of T tokens (prompt + answer, padded with <eos>): x, y i32
  // [B*T] with targets only on the answer tokens (-1 elsewhere), images f32 [B, image, image, 3].
  // Deterministic in `seed`. Kinds: the five short ones, and "describe" with probability p_describe.
  void batch(uint64_t seed, int64_t B, int64_t T, int64_t image_tokens, double p_describe, Tensor& x, Tensor& y,
             Tensor& images) const;

 private:
  ShapesConfig cfg_;
  std::vector<std::string> vocab_;
};

}  // namespace clm
