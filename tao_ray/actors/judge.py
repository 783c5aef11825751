"""JudgeActor: a vLLM engine that grades responses with an LLM judge (pointwise rubric score or pairwise verdict).

In: prompt records (dicts with "messages", optionally "reference_response") and one response text per record.
Out: one score in [0, 1] per response, or None where the judge's output was unreadable (counted, never fatal).
Prompts and parsing live in tao_ray/rewards/judge.py; this shell fits them into the context and batches them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable

from tao_ray.actors import cpu_cores, logs
from tao_ray.rewards import judge as rubric_lib

MODES = ("pointwise", "pairwise")


class JudgeActor:
    def __init__(self, model_path: str, dtype: str, max_model_len: int, kv_cache_gb: float | None,
                 gpu_memory_utilization: float, seed: int, tensor_parallel_size: int = 1,
                 enforce_eager: bool = False, mode: str = "pointwise", rubric: str | None = None,
                 max_tokens: int = 64, reference_max_tokens: int = 128, reason_first: bool = False):
        logs.redirect_output()  # before the engine prints anything
        if mode not in MODES:
            raise ValueError(f"judge mode must be one of {', '.join(MODES)}, got {mode!r}")
        # Quiet the engine's per-request progress bars; the driver prints one line per stage.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        import torch

        if not torch.cuda.is_available():  # vLLM runs on the CPU
            cpu_cores.give_engine_every_core()
        from vllm import LLM

        kv_cache = {"kv_cache_memory_bytes": int(kv_cache_gb * 2**30)} if kv_cache_gb else {
            "gpu_memory_utilization": gpu_memory_utilization}
        started = time.perf_counter()
        # Prefix caching pays off here: every judge prompt starts with the same rubric.
        self.llm = LLM(model=model_path, dtype=dtype, max_model_len=max_model_len, seed=seed,
                       tensor_parallel_size=tensor_parallel_size, enable_prefix_caching=True,
                       distributed_executor_backend="mp" if tensor_parallel_size > 1 else None,  # as the generator
                       enforce_eager=enforce_eager, **kv_cache)
        self.startup_s = time.perf_counter() - started
        self.tokenizer = self.llm.get_tokenizer()
        self.mode, self.max_model_len = mode, max_model_len
        default = rubric_lib.DEFAULT_RUBRIC if mode == "pointwise" else rubric_lib.DEFAULT_PAIRWISE_RUBRIC
        self.rubric = rubric or default
        self.max_tokens, self.reference_max_tokens = max_tokens, reference_max_tokens
        # Unless the judge should reason first, its reply is started with the verdict marker, so it only has to
        # continue with the verdict: small judges that wander off the format otherwise still give a readable score.
        self.verdict_prefix = "" if reason_first else ("Score:" if mode == "pointwise" else "Winner:")
        self.references: dict[tuple[str, str], str] = {}
        self.counts = {"judged": 0, "unparsed": 0, "one_sided": 0, "truncated": 0, "references_generated": 0}
        self._check_context()

    def ready(self) -> float:
        """Engine start-up seconds (the call also serves as a barrier: the engine is up)."""
        return self.startup_s

    def stats(self) -> dict[str, int]:
        """Counts since start: judged responses, unparsed (result None), one_sided (pairwise: only one of the two
        orders gave a verdict), truncated (judge prompts whose texts were cut to fit), references_generated."""
        return dict(self.counts)

    def judge(self, records: list[dict], responses: list[str]) -> list[float | None]:
        """One score per response (records[i] is the prompt of responses[i]); all judge prompts go to the engine in
        one batch. Pairwise mode first generates the missing reference answers (another batch, cached)."""
        if len(records) != len(responses):
            raise ValueError(f"judge: {len(records)} records but {len(responses)} responses")
        if not responses:
            return []
        if self.mode == "pointwise":
            prompts = [self._pointwise_prompt(record, text) for record, text in zip(records, responses)]
            scores = [rubric_lib.parse_pointwise(self.verdict_prefix + t)
                      for t in self._generate(prompts, self.max_tokens)]
        else:
            scores = self._judge_pairwise(records, responses)
        self.counts["judged"] += len(scores)
        self.counts["unparsed"] += sum(s is None for s in scores)
        return scores

    def _judge_pairwise(self, records: list[dict], responses: list[str]) -> list[float | None]:
        references = self._references(records)
        prompts = [ids for record, text, reference in zip(records, responses, references)
                   for ids in self._pairwise_prompts(record, text, reference)]
        verdicts = [rubric_lib.parse_pairwise(self.verdict_prefix + t)
                    for t in self._generate(prompts, self.max_tokens)]
        pairs = list(zip(verdicts[::2], verdicts[1::2]))
        self.counts["one_sided"] += sum((a is None) != (b is None) for a, b in pairs)
        return [rubric_lib.pairwise_score(a, b) for a, b in pairs]

    def _references(self, records: list[dict]) -> list[str]:
        """The prompt's reference_response, else the judge model's own greedy answer, generated once per prompt."""
        keys = [None if record.get("reference_response") else _reference_key(record) for record in records]
        missing = {key: record for key, record in zip(keys, records) if key is not None and key not in self.references}
        if missing:
            prompts = [self._reference_prompt(record) for record in missing.values()]
            texts = self._generate(prompts, self.reference_max_tokens)
            self.references.update(zip(missing, (t.strip() for t in texts)))
            self.counts["references_generated"] += len(texts)
        return [str(record["reference_response"]) if key is None else self.references[key]
                for key, record in zip(keys, records)]

    # ---- prompts that fit the context ----

    def _pointwise_prompt(self, record: dict, text: str) -> list[int]:
        messages = _messages(record)
        return self._fit(lambda cap: [rubric_lib.pointwise_messages(self.rubric, messages, text, cap)],
                         [messages, text], verdict=True)[0]

    def _pairwise_prompts(self, record: dict, text: str, reference: str) -> list[list[int]]:
        """Candidate as A, then as B. Both orders are fitted together so both views see the same texts."""
        messages = _messages(record)
        return self._fit(lambda cap: [rubric_lib.pairwise_messages(self.rubric, messages, text, reference, cap),
                                      rubric_lib.pairwise_messages(self.rubric, messages, reference, text, cap)],
                         [messages, text, reference], verdict=True)

    def _reference_prompt(self, record: dict) -> list[int]:
        # The prompt as the policy saw it; only when it is too long is it flattened into one capped user turn.
        messages = _messages(record)
        return self._fit(lambda cap: [messages if cap is None else [
            {"role": "user", "content": rubric_lib.render_conversation(messages, cap)}]],
            [messages], self.reference_max_tokens)[0]

    def _generate(self, prompts: list[list[int]], max_tokens: int) -> list[str]:
        """Greedy, one engine call for all prompts. No per-request seed: it crashes vLLM's CPU sampler."""
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
        return [out.outputs[0].text for out in outputs]

    def _fit(self, build: Callable[[int | None], list[list[dict]]], texts: list, max_tokens: int | None = None,
             verdict: bool = False) -> list[list[int]]:
        """Token ids of the prompts `build(cap)` returns, with the largest per-text character cap (None = no cap)
        at which every one leaves room for `max_tokens` in the context. `texts` are the variable parts (messages
        lists or strings); the longest bounds the search. A prompt over the context would fail the engine call."""
        budget = self.max_model_len - (self.max_tokens if max_tokens is None else max_tokens)
        full = [self._prompt_ids(m, verdict) for m in build(None)]
        if max(map(len, full)) <= budget:
            return full
        self.counts["truncated"] += 1
        longest = max(len(t) if isinstance(t, str) else len(rubric_lib.render_conversation(t)) for t in texts)
        low, high, best = 0, longest, None  # cap 0 fits (checked at start-up); the uncapped prompt does not
        while high - low > 1:
            middle = (low + high) // 2
            ids = [self._prompt_ids(m, verdict) for m in build(middle)]
            if max(map(len, ids)) <= budget:
                low, best = middle, ids
            else:
                high = middle
        return best if best is not None else [self._prompt_ids(m, verdict) for m in build(low)]

    def _prompt_ids(self, messages: list[dict], verdict: bool = False) -> list[int]:
        """The chat-templated prompt; with `verdict`, followed by the start of the judge's reply (the marker)."""
        ids = self._chat_ids(messages)
        if not verdict or not self.verdict_prefix:
            return ids
        return ids + self.tokenizer.encode(self.verdict_prefix, add_special_tokens=False)

    def _chat_ids(self, messages: list[dict]) -> list[int]:
        try:
            encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                         return_dict=True)
        except Exception:
            # Some chat templates (e.g. Gemma's) reject a system turn: fold the rubric into the user turn instead.
            if not messages or messages[0]["role"] != "system":
                raise
            merged = [{"role": "user", "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"},
                      *messages[2:]]
            encoded = self.tokenizer.apply_chat_template(merged, add_generation_prompt=True, tokenize=True,
                                                         return_dict=True)
        return list(encoded["input_ids"])

    def _check_context(self) -> None:
        """Fail at start-up, not on the first batch, when even fully truncated judge prompts cannot fit."""
        stub = [{"role": "user", "content": "x"}]
        smallest = (rubric_lib.pointwise_messages(self.rubric, stub, "x", 0) if self.mode == "pointwise"
                    else rubric_lib.pairwise_messages(self.rubric, stub, "x", "x", 0))
        needed = len(self._prompt_ids(smallest, verdict=True)) + self.max_tokens
        if self.mode == "pairwise":
            reference = [{"role": "user", "content": rubric_lib.render_conversation(stub, 0)}]
            needed = max(needed, len(self._prompt_ids(reference)) + self.reference_max_tokens)
        if needed > self.max_model_len:
            raise ValueError(f"judge max_model_len {self.max_model_len} is too small: the rubric and output alone "
                             f"need {needed} tokens; raise scoring.judge.max_model_len or shorten the rubric")


def _messages(record: dict) -> list[dict]:
    return record.get("messages") or []


def _reference_key(record: dict) -> tuple[str, str]:
    # The id alone is not enough: two prompt files may reuse ids for different prompts.
    content = json.dumps(_messages(record), sort_keys=True, ensure_ascii=False)
    return str(record.get("id", "")), hashlib.sha256(content.encode()).hexdigest()
