"""Reward-model scorer: any HF sequence-classification model with one output rates (prompt, response) pairs.

In: prompt records and responses. Out: one scalar per response (the model's logit; its scale is the model's own, so
recipes that mix it with 0-1 verifiers usually set scoring.normalize=group). The prompt and response are rendered
with the reward model's chat template when it has one, exactly as `tao-ray train-rm` renders its training pairs.
"""

from __future__ import annotations


def render(tokenizer, messages: list[dict], response: str) -> str:
    """The text a reward model reads: the conversation plus the assistant's response."""
    chat = [*messages, {"role": "assistant", "content": response}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(chat, tokenize=False)
    return "\n".join(f"{m['role']}: {m['content']}" for m in chat)


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Long inputs keep their end: the response, where the quality is, comes last.
    tokenizer.truncation_side = "left"
    return tokenizer


class RewardModel:
    def __init__(self, path: str, device: str = "cpu", batch_size: int = 16, max_length: int = 1024):
        import torch
        from transformers import AutoModelForSequenceClassification

        self.tokenizer = load_tokenizer(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).to(device).eval()
        if self.model.config.num_labels != 1:
            raise ValueError(f"{path}: a reward model needs exactly one output (num_labels=1), this one has "
                             f"{self.model.config.num_labels}")
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.device, self.batch_size, self.max_length = device, batch_size, max_length

    def score(self, records: list[dict], responses: list[str]) -> list[float | None]:
        import torch

        texts = [render(self.tokenizer, r["messages"], text) for r, text in zip(records, responses, strict=True)]
        scores: list[float | None] = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                encoded = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                         truncation=True, max_length=self.max_length).to(self.device)
                logits_B = self.model(**encoded).logits.squeeze(-1).float()
                scores.extend(float(x) for x in logits_B.cpu())
        return scores
