"""Tests of the Python module with the system Python (ctest runs: python3 -m unittest test_compactlm).

The model is the byte-level tiny Llama of tests/fixtures/tasks (made by tools/make_task_fixtures.py);
the log-likelihoods are checked against that script's PyTorch reference.
"""
import json
import math
import os
import unittest

import numpy as np

import compactlm

SRC = os.environ.get("CLM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
FIX = os.path.join(SRC, "tests/fixtures/tasks")


class CompactLM(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = compactlm.Model(os.path.join(FIX, "byte_llama"), threads=1)
        with open(os.path.join(FIX, "reference.json")) as f:
            cls.ref = json.load(f)

    def test_config_and_tokenizer(self):
        self.assertEqual(self.m.config["vocab_size"], 257)
        self.assertEqual(self.m.vocab_size, 257)
        ids = self.m.tokenize("héllo")
        self.assertEqual(ids, list("héllo".encode()))
        self.assertEqual(self.m.detokenize(ids), "héllo")

    def test_logits_are_numpy_and_match_loglikelihood(self):
        ctx, cont = "the cat sat on the", " mat"
        ids = self.m.tokenize(ctx + cont)
        lg = self.m.logits(ids)
        self.assertIsInstance(lg, np.ndarray)
        self.assertEqual(lg.shape, (len(ids), 257))
        self.assertEqual(lg.dtype, np.float32)
        lp = lg.astype(np.float64)
        lp = lp - lp.max(axis=1, keepdims=True)
        lp = lp - np.log(np.exp(lp).sum(axis=1, keepdims=True))
        want = sum(lp[t - 1, ids[t]] for t in range(len(ctx), len(ids)))
        got, greedy = self.m.loglikelihood(ctx, cont)
        self.assertAlmostEqual(got, want, delta=1e-4)
        self.assertIsInstance(greedy, bool)

    def test_loglikelihoods_match_the_pytorch_reference(self):
        t = self.ref["tasks"]["piqa"]
        got = self.m.loglikelihoods([tuple(r) for r in t["requests"]], batch=3, max_len=self.ref["max_len"])
        for (lp, greedy), want, wg in zip(got, t["logprob"], t["greedy"]):
            self.assertAlmostEqual(lp, want, delta=1e-4)
            self.assertEqual(greedy, wg)

    def test_generate_streams_and_is_deterministic(self):
        pieces = list(self.m.generate("Once", max_tokens=10, temperature=0))
        self.assertGreaterEqual(len(pieces), 1)
        text = "".join(pieces)
        self.assertEqual(text, "".join(self.m.generate("Once", max_tokens=10, temperature=0)))
        # greedy: the first byte is the argmax of the logits after the prompt
        first = int(np.argmax(self.m.logits(self.m.tokenize("Once"))[-1]))
        if first < 128:
            self.assertEqual(ord(text[0]), first)

    def test_stop_string_cuts_the_stream(self):
        full = "".join(self.m.generate("abc", max_tokens=20, temperature=0))
        if len(full) < 6:
            self.skipTest("greedy output too short")
        stop = full[3:5]
        cut = "".join(self.m.generate("abc", max_tokens=20, temperature=0, stop=[stop]))
        self.assertEqual(cut, full[: full.find(stop)])

    def test_perplexity_is_exp_of_mean_nll(self):
        text = "hello hello hello hello"
        ppl = self.m.perplexity(text, window=len(text))
        ids = self.m.tokenize(text)
        lg = self.m.logits(ids).astype(np.float64)
        lp = lg - lg.max(axis=1, keepdims=True)
        lp = lp - np.log(np.exp(lp).sum(axis=1, keepdims=True))
        nll = -np.mean([lp[t - 1, ids[t]] for t in range(1, len(ids))])
        self.assertAlmostEqual(ppl, math.exp(nll), delta=1e-3 * ppl)

    def test_evaluate_task_matches_reference(self):
        r = self.m.evaluate("piqa", os.path.join(FIX, "data"), batch=2)
        self.assertEqual(r["n"], 3)
        self.assertAlmostEqual(r["acc"], self.ref["tasks"]["piqa"]["acc"])
        self.assertIn("acc_norm", r)

    def test_quantize_then_score(self):
        m = compactlm.Model(os.path.join(FIX, "byte_llama"), threads=1)
        q = m.quantize("rtn", {"w": "int8"})
        self.assertEqual(q["method"], "rtn")
        lp, _ = m.loglikelihood("the cat", " sat")
        want, _ = self.m.loglikelihood("the cat", " sat")
        self.assertAlmostEqual(lp, want, delta=0.5)  # 8-bit weights: close, not equal
        self.assertNotEqual(lp, want)

    def test_errors_are_python_exceptions(self):
        with self.assertRaises(RuntimeError):
            compactlm.Model("/nonexistent/model")
        with self.assertRaises(ValueError):
            self.m.evaluate("mmlu", os.path.join(FIX, "data"))
        with self.assertRaises(ValueError):
            self.m.generate("x", temperature=-1)
        with self.assertRaises(ValueError):
            self.m.logits([])
        with self.assertRaises(Exception):
            self.m.logits([5000])


if __name__ == "__main__":
    unittest.main()
