// The channel self-attention block (lrd.models.blocks.ChannelSelfAttention) for scoring without
// gradients, on a CPU: L rounds of z = FFN(MHA(x)); x = LayerNorm(x + z) across the R channels
// of each score. Built on first use by lrd.models.native, with the machine's vector width.
//
// Why by hand: per score, the R x R attention is a few thousand multiply-adds in tiny matrices,
// which torch and inductor run as loop nests over whole tensors: half of an evaluation call's
// time (docs/performance.md). Here the scores go through all rounds in chunks whose activations
// stay in the core's L2 cache, features x tokens with the tokens of 16 scores side by side, so
// that a vector holds one value of 16 scores: the attention and the LayerNorm are then plain
// vector arithmetic, with no lane idle and no sums across a vector.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

constexpr int kLanes = 16;             // scores side by side: one vector of floats
constexpr int kHead = 16;              // values per head
constexpr int kKeys = 4;               // attention logits computed together (independent multiply-add chains)
constexpr int kMaxChannels = 64;
constexpr int64_t kChunkTokens = 768;  // x, q/k/v, z and the hidden layer of a chunk: ~1.5 MB at d = 64

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

inline v16 load(const float* p) { v16 v; std::memcpy(&v, p, sizeof v); return v; }
inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }
inline v16 splat(float x) { return v16{} + x; }
inline v16 vmax(v16 a, v16 b) { return a > b ? a : b; }

// e^x for x <= 0, within 2 ulp of expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial
// in r (the Cephes expf coefficients) and 2^n put into the exponent bits.
inline v16 exp_nonpositive(v16 x) {
  x = vmax(x, splat(-87.0f));
  const v16 magic = splat(12582912.0f);  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const v16 n = (x * 1.44269504088896341f + magic) - magic;
  v16 r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  v16 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const v16i bits = (__builtin_convertvector(n, v16i) + 127) << 23;
  v16 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// A chunk's activations: row f (a feature) holds the chunk's tokens, ordered (group of 16
// scores, channel, score in the group); `cols` tokens per row.
struct Chunk {
  int64_t groups, cols;
  int r, d;
  float* at(float* base, int64_t f, int64_t g, int i) const { return base + f * cols + (g * r + i) * kLanes; }
};

// Multi-head attention across the r channels of each score: qkv rows [q | k | v] (W_q already
// scaled by 1/sqrt(16)), z rows heads x 16.
void attention(const Chunk& c, float* qkv, float* z, int heads) {
  const int r = c.r, d = c.d;
  float logit_store[kMaxChannels + kKeys][kLanes];
  for (int64_t g = 0; g < c.groups; ++g)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < r; ++i) {
        v16 q[kHead];
        for (int t = 0; t < kHead; ++t) q[t] = load(c.at(qkv, h * kHead + t, g, i));
        v16 top = splat(-INFINITY);
        for (int j0 = 0; j0 < r; j0 += kKeys) {
          v16 acc[kKeys] = {};
          for (int t = 0; t < kHead; ++t)
            for (int u = 0; u < kKeys; ++u) acc[u] += q[t] * load(c.at(qkv, d + h * kHead + t, g, std::min(j0 + u, r - 1)));
          for (int u = 0; u < kKeys; ++u) {
            store(logit_store[j0 + u], acc[u]);
            if (j0 + u < r) top = vmax(top, acc[u]);
          }
        }
        v16 sum = splat(0.f);
        for (int j = 0; j < r; ++j) {
          const v16 e = exp_nonpositive(load(logit_store[j]) - top);
          store(logit_store[j], e);
          sum += e;
        }
        v16 out[kHead] = {};
        for (int j = 0; j < r; ++j) {
          const v16 e = load(logit_store[j]);
          for (int t = 0; t < kHead; ++t) out[t] += e * load(c.at(qkv, 2 * d + h * kHead + t, g, j));
        }
        const v16 inv = 1.f / sum;
        for (int t = 0; t < kHead; ++t) store(c.at(z, h * kHead + t, g, i), out[t] * inv);
      }
}

// x = relu(x + bias), bias per row.
void bias_relu(const Chunk& c, float* x, const float* bias) {
  for (int f = 0; f < c.d; ++f)
    for (int64_t col = 0; col < c.cols; col += kLanes) {
      const v16 y = load(x + f * c.cols + col) + bias[f];
      store(x + f * c.cols + col, vmax(y, splat(0.f)));
    }
}

// x = LayerNorm(x + (z + bias)) per token, over the rows (biased variance, as torch's layer_norm).
void residual_layer_norm(const Chunk& c, float* x, const float* z, const float* bias, const float* gain, const float* shift,
                         float eps) {
  const int d = c.d;
  for (int64_t col = 0; col < c.cols; col += kLanes) {
    v16 sum = splat(0.f);
    for (int f = 0; f < d; ++f) {
      const v16 y = load(x + f * c.cols + col) + (load(z + f * c.cols + col) + bias[f]);
      store(x + f * c.cols + col, y);
      sum += y;
    }
    const v16 mean = sum / static_cast<float>(d);
    v16 sq = splat(0.f);
    for (int f = 0; f < d; ++f) {
      const v16 y = load(x + f * c.cols + col) - mean;
      sq += y * y;
    }
    v16 inv;
    for (int lane = 0; lane < kLanes; ++lane) inv[lane] = 1.f / std::sqrt(sq[lane] / d + eps);
    for (int f = 0; f < d; ++f) store(x + f * c.cols + col, (load(x + f * c.cols + col) - mean) * inv * gain[f] + shift[f]);
  }
}

at::Tensor channel_block(const at::Tensor& x, const at::Tensor& wqkv, const at::Tensor& w1, const at::Tensor& b1,
                         const at::Tensor& w2, const at::Tensor& b2, const at::Tensor& g, const at::Tensor& beta,
                         int64_t heads, int64_t layers, double eps) {
  TORCH_CHECK(x.dim() == 3 && x.scalar_type() == at::kFloat && x.device().is_cpu(), "channel_block: x must be N x R x d float32 on the CPU");
  const int64_t n = x.size(0), r = x.size(1), d = x.size(2);
  TORCH_CHECK(d == heads * kHead && r >= 1 && r <= kMaxChannels, "channel_block: needs 16 values per head and at most 64 channels");
  const at::Tensor xin = x.contiguous(), wq = wqkv.contiguous(), w1c = w1.contiguous(), w2c = w2.contiguous();
  const at::Tensor b1c = b1.contiguous(), b2c = b2.contiguous(), gc = g.contiguous(), betac = beta.contiguous();
  at::Tensor out = at::empty_like(xin);
  const int64_t groups_per_chunk = std::max<int64_t>(1, kChunkTokens / (r * kLanes));
  const int64_t all_groups = (n + kLanes - 1) / kLanes;
  at::parallel_for(0, all_groups, groups_per_chunk, [&](int64_t lo, int64_t hi) {
    const int64_t most = std::min(groups_per_chunk, hi - lo) * r * kLanes;
    const auto opts = x.options();
    at::Tensor xs = at::empty({d * most}, opts), qkv = at::empty({3 * d * most}, opts), z = at::empty({d * most}, opts);
    at::Tensor hidden = at::empty({d * most}, opts), z2 = at::empty({d * most}, opts);
    auto rows = [](const at::Tensor& buf, int64_t k, int64_t cols) { return buf.narrow(0, 0, k * cols).view({k, cols}); };
    for (int64_t g0 = lo; g0 < hi; g0 += groups_per_chunk) {
      const Chunk c{std::min(groups_per_chunk, hi - g0), std::min(groups_per_chunk, hi - g0) * r * kLanes, static_cast<int>(r),
                    static_cast<int>(d)};
      at::Tensor xc = rows(xs, d, c.cols), qc = rows(qkv, 3 * d, c.cols), zc = rows(z, d, c.cols), hc = rows(hidden, d, c.cols);
      at::Tensor z2c = rows(z2, d, c.cols);
      float* xp = xc.data_ptr<float>();
      const float* src = xin.data_ptr<float>();
      for (int64_t gi = 0; gi < c.groups; ++gi)  // tokens in (scores padded with zeros to whole groups)
        for (int i = 0; i < r; ++i)
          for (int lane = 0; lane < kLanes; ++lane) {
            const int64_t s = (g0 + gi) * kLanes + lane;
            for (int f = 0; f < d; ++f) c.at(xp, f, gi, i)[lane] = s < n ? src[(s * r + i) * d + f] : 0.f;
          }
      for (int64_t layer = 0; layer < layers; ++layer) {
        at::mm_out(qc, wq, xc);
        attention(c, qc.data_ptr<float>(), zc.data_ptr<float>(), static_cast<int>(heads));
        at::mm_out(hc, w1c, zc);
        bias_relu(c, hc.data_ptr<float>(), b1c.data_ptr<float>());
        at::mm_out(z2c, w2c, hc);
        residual_layer_norm(c, xp, z2c.data_ptr<float>(), b2c.data_ptr<float>(), gc.data_ptr<float>(), betac.data_ptr<float>(),
                            static_cast<float>(eps));
      }
      float* dst = out.data_ptr<float>();
      for (int64_t gi = 0; gi < c.groups; ++gi)  // and out
        for (int i = 0; i < r; ++i)
          for (int lane = 0; lane < kLanes; ++lane) {
            const int64_t s = (g0 + gi) * kLanes + lane;
            if (s < n)
              for (int f = 0; f < d; ++f) dst[(s * r + i) * d + f] = c.at(xp, f, gi, i)[lane];
          }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(lrd, m) {
  m.def("channel_block(Tensor x, Tensor wqkv, Tensor w1, Tensor b1, Tensor w2, Tensor b2, Tensor g, Tensor beta, "
        "int heads, int layers, float eps) -> Tensor");
}

TORCH_LIBRARY_IMPL(lrd, CPU, m) { m.impl("channel_block", &channel_block); }
