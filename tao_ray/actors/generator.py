"""GeneratorActor: a vLLM engine that turns prompts into groups of candidates and takes new weights in place.

In: chat messages per prompt. Out: one `Generation` per prompt (token ids for the learner, texts for the scorer).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from tao_ray.actors import adapter_files, cpu_cores, logs
from tao_ray.config import Recipe
from tao_ray.core import diversity, precision
from tao_ray.core.batch import Generation
from tao_ray.core.composition import Scores
from tao_ray.core.sampling import Sample, Sampler, SamplingPlan, whole_group_scores
from tao_ray.data.embeddings import Embedder
from tao_ray.runtime import faults
from tao_ray.sync import wire, worker


@dataclass(frozen=True)
class GeneratorSpec:
    """Everything a GeneratorActor is started with; the run builds it from the recipe (`from_recipe`), the commands
    from their own options, by name."""

    model_path: str
    dtype: str = "auto"
    """generation.dtype: auto is resolved on the engine's own node (bfloat16 where the CPU has native bf16)."""
    max_model_len: int = 1024
    kv_cache_gb: float | None = 0.5
    """Set on CPU (vLLM would otherwise reserve a fraction of all RAM); None on GPU (gpu_memory_utilization)."""
    gpu_memory_utilization: float = 0.85
    seed: int = 0
    tensor_parallel_size: int = 1
    enforce_eager: bool = True
    lora_rank: int = 0
    """Serve base + a LoRA adapter of this rank (adapter sync); 0: plain weights."""
    distance: str = "embedding"
    """How far apart two responses are (generation.distance): embedding or jaccard."""
    device: str = "cpu"
    weights_dtype: str = "float32"
    """model.dtype: what auto falls back to where the CPU has no native bf16."""

    @classmethod
    def from_recipe(cls, recipe: Recipe, model_path: str, rank: int = 0) -> GeneratorSpec:
        res, gen, lora = recipe.resources, recipe.generation, recipe.training.lora
        return cls(model_path, gen.dtype, recipe.model.max_model_len, gen.kv_cache_gb, gen.gpu_memory_utilization,
                   seed=gen.seed + rank, tensor_parallel_size=res.tensor_parallel_size,
                   enforce_eager=gen.enforce_eager if gen.enforce_eager is not None else res.device == "cpu",
                   lora_rank=lora.r if lora.r and lora.sync == "adapter" else 0, distance=gen.distance,
                   device=res.device, weights_dtype=recipe.model.dtype)


class GeneratorActor:
    def __init__(self, spec: GeneratorSpec):
        logs.redirect_output()  # before the engine prints anything
        model_path, max_model_len, seed, device = spec.model_path, spec.max_model_len, spec.seed, spec.device
        tensor_parallel_size, lora_rank, distance = spec.tensor_parallel_size, spec.lora_rank, spec.distance
        kv_cache_gb, gpu_memory_utilization = spec.kv_cache_gb, spec.gpu_memory_utilization
        enforce_eager, dtype, weights_dtype = spec.enforce_eager, spec.dtype, spec.weights_dtype

        self.dtype = precision.resolve(dtype, device, weights_dtype)
        # Quiet the engine's per-request progress bars; the driver prints one line per stage.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        if device == "cpu":
            cpu_cores.give_engine_every_core()
        from vllm import LLM

        kv_cache = {"kv_cache_memory_bytes": int(kv_cache_gb * 2**30)} if kv_cache_gb else {
            "gpu_memory_utilization": gpu_memory_utilization}
        # Adapter sync: the engine serves base + the learner's newest LoRA adapter (vLLM's supported ranks only).
        lora = {"enable_lora": True, "max_loras": 1,
                "max_lora_rank": next(r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= lora_rank)
                } if lora_rank else {}
        # On GPUs weights arrive through vLLM's weight-transfer engine; on CPU by in-place reload (worker.py).
        transfer = {"weight_transfer_config": {"backend": "nccl"}} if device == "cuda" else {}
        self.transfer_group = False
        started = time.perf_counter()
        self.llm = LLM(model=model_path, dtype=self.dtype, max_model_len=max_model_len, seed=seed,
                       # Log-probs of sampled tokens as sampled: after temperature (the behaviour policy).
                       logprobs_mode="processed_logprobs",
                       tensor_parallel_size=tensor_parallel_size,
                       # The actor holds all of its engine's GPUs in one bundle of the run's placement group: its
                       # tensor-parallel workers are processes inside it, not Ray tasks needing bundles of their own.
                       distributed_executor_backend="mp" if tensor_parallel_size > 1 else None,
                       worker_extension_cls=worker.WORKER_EXTENSION, enable_prefix_caching=True,
                       enforce_eager=enforce_eager, **kv_cache, **lora, **transfer)
        self.startup_s = time.perf_counter() - started
        self.policy_version = 0
        self.tokenizer = self.llm.get_tokenizer()
        self.lora_request = None
        self.adapter_dir: str | None = None
        self.max_model_len, self.device, self.distance_kind = max_model_len, device, distance
        self.embedder = None

    def ready(self) -> float:
        """Engine start-up seconds (the call also serves as a barrier: the engine is up)."""
        return self.startup_s

    def describe(self) -> dict:
        return {"dtype": self.dtype}

    def version(self) -> int:
        """The policy version this engine serves: the iteration whose weights it holds (0: the base model's, as
        loaded at start, and again after a restart until it is refitted)."""
        return self.policy_version

    def engine_processes(self) -> tuple[str, list[tuple[int, float]]]:
        """(node id, [(pid, start time)]) of the engine's processes, so the driver can kill them should this
        actor die without taking them along."""
        return faults.child_processes()

    def shutdown(self) -> None:
        """Stop the engine and its processes before the actor is killed, and remove the adapter's files."""
        import gc
        import shutil

        llm, self.llm = self.llm, None
        del llm
        gc.collect()
        if self.adapter_dir is not None:
            shutil.rmtree(self.adapter_dir, ignore_errors=True)
            self.adapter_dir = None

    def prompt_token_ids(self, messages: list[dict[str, str]]) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                     return_dict=True)
        return list(encoded["input_ids"])

    def generate(self, prompts: list[tuple[int, list[dict[str, str]]]], n: int, temperature: float, top_p: float,
                 max_tokens: int, plan: SamplingPlan | None = None, scorer=None,
                 records: list[dict] | None = None) -> list[Generation]:
        """`prompts` are (index, messages) pairs; temperature 0 means greedy (then n should be 1). `plan` picks the
        sampling strategy (default: n iid samples). The adaptive strategy scores while it samples: it needs a
        ScorerActor handle and each prompt's record, in the order of `prompts`; its Generations carry raw and
        learning scores."""
        return self.generate_and_answer(prompts, n, temperature, top_p, max_tokens, plan, scorer, records)[0]

    def generate_and_answer(self, prompts: list[tuple[int, list[dict[str, str]]]], n: int, temperature: float,
                            top_p: float, max_tokens: int, plan: SamplingPlan | None = None, scorer=None,
                            records: list[dict] | None = None,
                            greedy_prompts: list[tuple[int, list[dict[str, str]]]] = ()
                            ) -> tuple[list[Generation], list[Generation]]:
        """`generate`, plus one greedy answer to each of `greedy_prompts` (the held-out evaluation), drawn in the
        same engine call as the first round of samples so that the engine batches both."""
        plan = plan or SamplingPlan(n=n, max_draws=n)
        adaptive = plan.strategy == "adaptive"
        score = composition_ref = None
        if adaptive:
            import ray

            composition_ref = scorer.get_composition.remote()  # fetched while the engine draws

            def score(indices: list[int], texts: list[list[str]]) -> Scores:
                return ray.get(scorer.score.remote([records[i] for i in indices], texts))

        needs_distance = plan.min_distance > 0 or plan.strategy != "iid" or n > 1
        embed = self._embedder() if needs_distance and self.distance_kind == "embedding" else None
        distance = self._distance()
        greedy = [(list(messages), 1) for _, messages in greedy_prompts]
        answers: list[list[Sample]] = []

        def draw(requests):
            drawn = self._draw(requests + greedy, temperature, top_p, max_tokens, greedy_from=len(requests))
            answers.extend(drawn[len(requests):])
            greedy.clear()  # only with the first round
            return drawn[:len(requests)]

        sampler = Sampler(plan, draw=draw,
                          embed=embed, distance=distance, score=score,
                          fits=lambda messages: len(self.prompt_token_ids(messages)) + max_tokens
                          <= self.max_model_len)
        groups = sampler.run([messages for _, messages in prompts])
        if adaptive:
            # Groups were scored in parts as they grew: normalize over each whole group only now.
            final = whole_group_scores(groups, ray.get(composition_ref))
        if greedy:  # no sampling round ran (no prompts to sample): the answers alone
            draw([])
        answered = [Generation(prompt_index=index, prompt_token_ids=self.prompt_token_ids(messages),
                               policy_version=self.policy_version, response_texts=[samples[0].text],
                               response_token_ids=[samples[0].token_ids], samples_drawn=1,
                               tokens_drawn=len(samples[0].token_ids))
                    for (index, messages), samples in zip(greedy_prompts, answers, strict=True)]
        return [Generation(prompt_index=index, prompt_token_ids=self.prompt_token_ids(group.messages),
                           policy_version=self.policy_version,
                           response_texts=[s.text for s in group.kept],
                           response_token_ids=[s.token_ids for s in group.kept],
                           response_logprobs=([s.logprobs for s in group.kept]
                                              if all(s.logprobs is not None for s in group.kept) else None),
                           samples_drawn=group.drawn, near_duplicates=group.near_duplicates,
                           tokens_drawn=group.tokens_drawn,
                           rewards=final.raw[k] if adaptive else None,
                           learning_rewards=final.learning[k] if adaptive else None,
                           mean_distance=(diversity.mean_pairwise_distance(group.keys, distance)
                                          if needs_distance else None))
                for k, ((index, _), group) in enumerate(zip(prompts, groups, strict=True))], answered

    def _draw(self, requests: list[tuple[list[dict[str, str]], int]], temperature: float, top_p: float,
              max_tokens: int, greedy_from: int | None = None) -> list[list[Sample]]:
        """One engine call for every (messages, count) request; those from `greedy_from` on are answered greedily."""
        from vllm import SamplingParams

        prompts = [{"prompt_token_ids": self.prompt_token_ids(messages)} for messages, _ in requests]
        # The sampled tokens' own log-probs (logprobs=0) cost little and make an off-policy update correctable.
        greedy_from = len(requests) if greedy_from is None else greedy_from
        params = [SamplingParams(n=count, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                 logprobs=0 if temperature > 0 else None) if i < greedy_from
                  else SamplingParams(n=count, temperature=0.0, max_tokens=max_tokens)
                  for i, (_, count) in enumerate(requests)]
        outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=self.lora_request)
        return [[Sample(c.text, list(c.token_ids), _sampled_logprobs(c)) for c in out.outputs] for out in outputs]

    def _embedder(self):
        if self.embedder is None:
            if self.device == "cpu":
                cpu_cores.give_embedder_the_engine_cores()

            self.embedder = Embedder("cuda" if self.device == "cuda" else "cpu")
        return self.embedder

    def _distance(self):
        if self.distance_kind == "embedding":
            return lambda u, v: float(1.0 - (u @ v))  # unit vectors: cosine distance in [0, 2]
        return diversity.jaccard_distance

    # ---- weight sync (see tao_ray/sync/ for the protocol) ----

    def check_metadata(self, names: list[str]) -> None:
        """metadata step: refuse weights for a different model before any tensor moves."""
        own = set(self.llm.collective_rpc("tao_parameter_names")[0])
        # vLLM fuses q/k/v and gate/up, so compare on layer prefixes rather than exact names.
        own_layers = {n.split(".layers.")[1].split(".")[0] for n in own if ".layers." in n}
        sent_layers = {n.split(".layers.")[1].split(".")[0] for n in names if ".layers." in n}
        if own_layers != sent_layers:
            raise ValueError(f"weight sync: sender has {len(sent_layers)} layers, engine has {len(own_layers)}")

    def parameter_sum(self, name: str) -> float:
        return self.llm.collective_rpc("tao_parameter_sum", args=(name,))[0]

    def weight_dtype(self) -> str:
        """The engine's dtype: the learner sends the weights in it."""
        return str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")

    def opens_channel(self, node_id: str, path: str) -> bool:
        """Whether this engine can read a learner's shared-memory weights file: same Ray node, and the path opens."""
        import ray

        if ray.get_runtime_context().get_node_id() != node_id:
            return False
        try:
            with open(path, "rb"):
                return True
        except OSError:
            return False

    def receive_weights(self, payload: bytes | str, version: int = 0) -> float:
        """update + finish steps on CPU: reload in place from a safetensors payload (staged in shared memory first)
        or from the path of a file already there (a same-node learner's shared-memory file)."""
        started, clock = time.time(), time.perf_counter()
        self.policy_version = -1  # torn: a reload that fails half-way must not pass for the old version
        path = payload if isinstance(payload, str) else wire.stage_payload(payload)
        staged = time.perf_counter()
        try:
            self.llm.collective_rpc("tao_reload_from_file", args=(path,))
        finally:
            if path is not payload:
                os.unlink(path)
        reloaded = time.perf_counter()
        self.llm.reset_prefix_cache()  # cached KV blocks were computed by the old weights
        self.policy_version = version
        done = time.perf_counter()
        self.last_receive = {"started": started, "stage_s": staged - clock, "reload_s": reloaded - staged,
                             "reset_cache_s": done - reloaded}
        return done - clock

    def receive_timing(self) -> dict[str, float]:
        """The last receive_weights: its start (wall clock, seconds since the epoch) and the seconds of each step."""
        return dict(getattr(self, "last_receive", {}))

    def receive_adapter(self, files: dict[str, bytes], version: int = 0) -> float:
        """update + finish steps of the adapter path: load the new LoRA adapter now (so its cost is counted
        here, not in the next generate) and drop the previous one."""
        import shutil

        from vllm.lora.request import LoRARequest

        started = time.perf_counter()
        if self.lora_request is None:  # this engine's first adapter: clear what killed generators left
            adapter_files.remove_orphans()
        directory = adapter_files.new_adapter_dir()
        for name, content in files.items():
            with open(os.path.join(directory, name), "wb") as f:
                f.write(content)
        previous, previous_dir = self.lora_request, self.adapter_dir
        adapter_id = previous.lora_int_id + 1 if previous else 1
        self.lora_request = LoRARequest(f"tao-ray-{adapter_id}", adapter_id, directory)
        self.adapter_dir = directory
        self.llm.llm_engine.add_lora(self.lora_request)
        if previous is not None:
            self.llm.llm_engine.remove_lora(previous.lora_int_id)
            shutil.rmtree(previous_dir, ignore_errors=True)
        self.llm.reset_prefix_cache()
        self.policy_version = version
        return time.perf_counter() - started

    # The CUDA path runs on vLLM's maintained weight-transfer engine (vllm.distributed.weight_transfer, "nccl"):
    # packed, multi-buffered broadcasts received by every tensor-parallel worker, loaded layer by layer.

    def init_broadcast_group(self, master_address: str, master_port: int, rank_offset: int, world_size: int,
                             buffer_bytes: int, buffers: int) -> None:
        """init step on CUDA: this engine's workers join the group as ranks rank_offset .. rank_offset + T - 1
        (learner rank 0 is rank 0); runs while the learner and the other engines join. Any earlier group of this
        engine is shut down first."""
        self.close_broadcast_group()
        self.llm.init_weight_transfer_engine({"init_info": {
            "master_address": master_address, "master_port": master_port, "rank_offset": rank_offset,
            "world_size": world_size, "packed": True, "packed_buffer_size_bytes": buffer_bytes,
            "packed_num_buffers": buffers}})
        self.transfer_group = True

    def receive_broadcast(self, metas: list[tuple[str, str, tuple[int, ...]]], version: int = 0) -> float:
        """update + finish steps on CUDA: runs while learner rank 0 broadcasts the tensors `metas` names."""
        started = time.perf_counter()
        self.policy_version = -1  # torn until finished: a receive that fails must not pass for the old version
        self.llm.start_weight_update()
        self.llm.update_weights({"update_info": {"names": [name for name, _, _ in metas],
                                                 "dtype_names": [dtype for _, dtype, _ in metas],
                                                 "shapes": [list(shape) for _, _, shape in metas]}})
        self.llm.finish_weight_update(weight_version=version)
        self.llm.reset_prefix_cache()
        self.policy_version = version
        return time.perf_counter() - started

    def close_broadcast_group(self) -> None:
        """Destroy this engine's communicators of the weight-transfer group, if it has one."""
        if self.transfer_group:
            self.transfer_group = False
            self.llm.shutdown_weight_transfer_engine()


def _sampled_logprobs(completion) -> list[float] | None:
    """Each sampled token's log-prob from a vLLM completion asked for logprobs=0 (the sampled token only)."""
    if not completion.logprobs:
        return None
    return [position[token].logprob for token, position in zip(completion.token_ids, completion.logprobs,
                                                                 strict=True)]
