"""Train a tiny sentence-embedding model for a few steps on a built corpus, on the CPU.

    corpus build --sample --output sample-corpus
    python examples/train_tiny_model.py sample-corpus --steps 20

The model is made here, not downloaded: a WordPiece tokenizer is trained on the corpus
text with the ``tokenizers`` library, and a two-layer BERT is created from a small
``BertConfig`` with random weights. Training uses ``SentenceTransformerTrainer`` with
``MultipleNegativesRankingLoss`` on the batches of ``pipelines.training.MixtureReader``:
an entry of ``data_config.json`` chosen by weight per step, each batch from one entry,
no duplicate texts in a batch. The trainer logs the loss of every step; ``--save``
writes the model.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

# Everything is made locally: never ask the Hugging Face Hub for anything.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pyarrow.parquet as pq  # noqa: E402

from pipelines import training  # noqa: E402

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def corpus_texts(output: str, max_texts: int):
    """Up to ``max_texts`` texts of the corpus (every text column of every drawable
    entry), read a record batch at a time.

    Args:
        output: the build's output folder.
        max_texts: stop after this many texts.
    """
    count = 0
    for entry in training.read_mix(output):
        if not entry.drawable:
            continue
        for path in entry.files:
            for record_batch in pq.ParquetFile(path).iter_batches(columns=entry.text_columns, use_threads=False):
                for column in record_batch.columns:
                    for text in column.to_pylist():
                        yield text
                        count += 1
                        if count >= max_texts:
                            return


def train_tokenizer(texts, vocab_size: int):
    """A lower-casing BERT WordPiece tokenizer trained on ``texts``, wrapped for transformers.

    Args:
        texts: iterable of strings to learn the vocabulary from.
        vocab_size: largest vocabulary to learn (a small corpus gives fewer tokens).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size,
                                                                   special_tokens=SPECIAL_TOKENS))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return BertTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                             cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def tiny_model(tokenizer, folder: Path, max_seq_length: int):
    """A SentenceTransformer of a randomly initialised two-layer BERT and mean pooling.

    Args:
        tokenizer: the tokenizer the model reads with.
        folder: where the BERT and its tokenizer are saved for the Transformer module to load.
        max_seq_length: tokens per text the model reads (longer texts are cut).
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=max_seq_length)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    transformer = Transformer(str(folder), max_seq_length=max_seq_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device="cpu")


def train(output: str, *, steps: int, batch_size: int, seed: int, work_dir: Path,
          learning_rate: float = 5e-4):
    """Train the tiny model for ``steps`` mixture batches; returns ``(model, losses)``.

    Args:
        output: the build's output folder.
        steps: optimiser steps (one mixture batch each).
        batch_size: examples per batch.
        seed: seed of the mixture reader and of the weights' initialisation.
        work_dir: folder for the model files, the trainer's output and the dataset cache.
        learning_rate: the optimiser's learning rate.
    """
    import transformers
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    transformers.set_seed(seed)
    tokenizer = train_tokenizer(corpus_texts(output, max_texts=200_000), vocab_size=2000)
    model = tiny_model(tokenizer, work_dir / "init", max_seq_length=128)
    losses: list[float] = []

    class RecordLoss(transformers.TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    args = SentenceTransformerTrainingArguments(
        output_dir=str(work_dir / "trainer"), max_steps=steps, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, warmup_steps=0, logging_steps=1, save_strategy="no",
        report_to="none", use_cpu=True, seed=seed, dataloader_drop_last=False,
        disable_tqdm=True,
        multi_dataset_batch_sampler=training.mixture_batch_sampler(output, steps, seed=seed))
    trainer = SentenceTransformerTrainer(
        model=model, args=args,
        train_dataset=training.mixture_datasets(output, cache_dir=str(work_dir / "datasets")),
        loss=MultipleNegativesRankingLoss(model), callbacks=[RecordLoss()])
    trainer.train()
    return model, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the output folder of 'corpus build'")
    parser.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    parser.add_argument("--batch-size", type=int, default=4, help="examples per batch (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mix and the model (default 0)")
    parser.add_argument("--save", help="folder to save the trained model in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tiny-model-") as work:
        model, losses = train(args.output, steps=args.steps, batch_size=args.batch_size,
                              seed=args.seed, work_dir=Path(work))
        if args.save:
            model.save(args.save)
            print(f"Saved the model to {args.save}")
    print(f"Trained {len(losses)} steps: loss {losses[0]:.4f} at the first, {losses[-1]:.4f} at the last.")


if __name__ == "__main__":
    main()
