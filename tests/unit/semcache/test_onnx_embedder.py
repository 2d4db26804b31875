"""The ONNX Runtime embedder: same vectors as sentence-transformers, exported once, fallback."""

import threading

import numpy as np
import pytest

from semcache import onnx_export
from semcache.embedder import Embedder, model_path

pytest.importorskip("onnxruntime")


def varied_texts() -> list[str]:
    """Return 300 texts: mostly question-sized, some past the 256-token limit, mixed scripts and
    symbols (only 8 long texts: torch, the reference, is slow on them)."""
    rng = np.random.default_rng(7)
    words = ("the cat sat on a mat while 42 dogs didn't bark at Paris' Eiffel tower in 1889 "
             "ñandú Ünïcödé 東京 Москва 🎉 $3.50 e-mail x@y.z C++ (parenthesis) - , . ? ! "
             "HOW do I reset my PASSWORD quickly").split()
    texts = ["", " ", "a", "   leading and trailing   ", "Tab\tand\nnewline", "?" * 600]
    for i in range(294):
        length = 400 if i % 36 == 0 else int(rng.choice([2, 5, 9, 15, 25, 40, 80]))
        texts.append(" ".join(rng.choice(words, length)))
    return texts


@pytest.fixture(scope="module")
def onnx_embedder():
    return Embedder(backend="onnx")


@pytest.fixture(scope="module")
def torch_embedder():
    return Embedder(backend="torch")


class TestEquivalence:
    def test_sentence_embeddings_match_sentence_transformers(self, onnx_embedder,
                                                             torch_embedder):
        texts = varied_texts()
        assert onnx_embedder.backend == "onnx" and torch_embedder.backend == "torch"
        got, want = onnx_embedder.embed_sync(texts), torch_embedder.embed_sync(texts)
        assert got.shape == want.shape == (len(texts), 384) and got.dtype == np.float32
        assert float(np.max(np.abs(got - want))) < 1e-5
        assert float(np.min(np.sum(got * want, axis=1))) > 0.99999

    def test_single_and_batched_encodes_agree(self, onnx_embedder):
        texts = varied_texts()[:40]
        batched = onnx_embedder.embed_sync(texts)
        single = np.stack([onnx_embedder.embed_sync([t])[0] for t in texts])
        assert float(np.max(np.abs(batched - single))) < 1e-5

    def test_layered_pass_keeps_the_sentence_embedding_bit_for_bit(self, onnx_embedder,
                                                                     torch_embedder):
        texts = varied_texts()[:120]
        for embedder in (onnx_embedder, torch_embedder):
            vectors, layers = embedder.embed_layers_sync(texts)
            assert np.array_equal(vectors, embedder.embed_sync(texts)), embedder.backend
            assert embedder.layers == (1, 2, 3, 4, 5)
            assert layers.shape == (len(texts), 5, 384) and layers.dtype == np.float32

    def test_intermediate_layers_match_torch(self, onnx_embedder, torch_embedder):
        texts = varied_texts()
        (_, got), (_, want) = (onnx_embedder.embed_layers_sync(texts),
                               torch_embedder.embed_layers_sync(texts))
        # Mean-pooled and normalized like the sentence embedding (measured max |diff| 2.4e-7).
        assert float(np.max(np.abs(got - want))) < 1e-5
        assert float(np.min(np.sum(got * want, axis=2))) > 0.99999
        assert np.allclose(np.linalg.norm(got, axis=2), 1, atol=1e-5)
        # They are the pooled hidden states of layers 1-5 of the transformer (torch, unpooled).
        import torch
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_path()))
        model = AutoModel.from_pretrained(str(model_path())).eval()
        batch = tokenizer(texts[:5], padding=True, truncation=True, max_length=256,
                          return_tensors="pt")
        with torch.inference_mode():
            states = model(**batch, output_hidden_states=True).hidden_states
        mask = batch["attention_mask"][:, :, None].float()
        for column, layer in enumerate(onnx_embedder.layers):
            pooled = ((states[layer] * mask).sum(1) / mask.sum(1)).numpy()
            pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
            assert float(np.max(np.abs(pooled - got[:5, column]))) < 1e-5
        assert onnx_embedder.embed_layers_sync([])[1].shape == (0, 5, 384)

    async def test_micro_batched_layers_match_the_batch(self, onnx_embedder):
        import asyncio

        texts = [f"which train reaches town {i % 5} by {i} o'clock?" for i in range(24)]
        before = onnx_embedder.batches
        results = await asyncio.gather(*(onnx_embedder.embed_with_layers(t) for t in texts))
        assert onnx_embedder.batches - before < len(texts)
        vectors, layers = onnx_embedder.embed_layers_sync(texts)
        for row, (vector, pooled) in enumerate(results):
            assert sorted(pooled) == [1, 2, 3, 4, 5]
            assert float(np.max(np.abs(vector - vectors[row]))) < 1e-5
            assert float(np.max(np.abs(pooled[3] - layers[row, 2]))) < 1e-5

    async def test_layers_are_pooled_only_for_the_texts_that_ask(self, onnx_embedder):
        import asyncio

        texts = [f"how long is the walk to harbour {i}?" for i in range(12)]
        alone = await onnx_embedder.embed_with_layers(texts[0], layers=False)
        assert alone[1] is None
        # A batch mixing both: the texts that asked get layers, the others none, and every
        # sentence vector is the same as without layers.
        mixed = await asyncio.gather(*(onnx_embedder.embed_with_layers(t, layers=i % 2 == 0)
                                       for i, t in enumerate(texts)))
        expected = onnx_embedder.embed_sync(texts)
        assert float(np.max(np.abs(alone[0] - expected[0]))) < 1e-6
        for i, (vector, pooled) in enumerate(mixed):
            assert (pooled is not None) == (i % 2 == 0)
            assert float(np.max(np.abs(vector - expected[i]))) < 1e-5

    async def test_micro_batching_on_onnx(self, onnx_embedder):
        import asyncio

        texts = [f"question {i} about trains to town {i % 5}" for i in range(24)]
        before = onnx_embedder.batches
        vectors = await asyncio.gather(*(onnx_embedder.embed(t) for t in texts))
        assert onnx_embedder.batches - before < len(texts)
        assert float(np.max(np.abs(np.stack(vectors) - onnx_embedder.embed_sync(texts)))) < 1e-5


class TestExport:
    def test_exports_once_and_reuses_the_file(self, tmp_path, settings, monkeypatch):
        settings.SEMCACHE_ONNX_DIR = str(tmp_path)
        calls = []

        def fake_export(model_dir, destination):
            calls.append(destination)
            destination.write_bytes(b"onnx")

        monkeypatch.setattr(onnx_export, "export", fake_export)
        threads = [threading.Thread(target=onnx_export.ensure_exported, args=(model_path(),))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        path = onnx_export.ensure_exported(model_path())
        assert len(calls) == 1 and path.read_bytes() == b"onnx"
        assert path.parent.parent == tmp_path
        assert not list(path.parent.glob("*.tmp"))

    def test_export_has_the_intermediate_layers_as_outputs(self, onnx_embedder):
        import onnxruntime as ort

        assert "intermediate" in onnx_export.RECIPE  # a new recipe: a new key, a new export
        session = ort.InferenceSession(str(onnx_export.onnx_path(model_path())),
                                       providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == ["last_hidden_state"] + [
            f"hidden_state_{layer}" for layer in range(1, 6)]

    def test_key_follows_the_recipe(self, monkeypatch):
        key = onnx_export.export_key(model_path())
        monkeypatch.setattr(onnx_export, "RECIPE", onnx_export.RECIPE + "-changed")
        assert onnx_export.export_key(model_path()) != key

    def test_failed_export_leaves_nothing_and_falls_back_to_torch(self, tmp_path, settings,
                                                                  monkeypatch, caplog):
        settings.SEMCACHE_ONNX_DIR = str(tmp_path)

        def broken_export(model_dir, destination):
            destination.write_bytes(b"half")
            raise RuntimeError("exporter unavailable")

        monkeypatch.setattr(onnx_export, "export", broken_export)
        with pytest.raises(RuntimeError):
            onnx_export.ensure_exported(model_path())
        assert not list(tmp_path.rglob("*.onnx*"))
        embedder = Embedder(backend=None)  # the default: onnx if it works
        assert embedder.backend == "torch"
        assert "falling back to torch" in caplog.text
        assert embedder.embed_sync(["still works"]).shape == (1, 384)

    def test_export_command(self, onnx_embedder):
        import json
        from io import StringIO

        from django.core.management import call_command

        out = StringIO()
        call_command("export_embedder", "--json", "--no-check", stdout=out)
        result = json.loads(out.getvalue())
        assert result["exported"] is False  # the fixture's embedder exported it already
        assert result["path"] == str(onnx_export.onnx_path(model_path()))


class TestInt8:
    """SEMCACHE_EMBED_PRECISION=int8: a quantized copy next to the fp32 export, close to it."""

    def test_quantized_embedder_stays_close_to_fp32(self, onnx_embedder):
        int8 = Embedder(backend="onnx", precision="int8")
        assert (int8.backend, int8.precision, onnx_embedder.precision) == ("onnx", "int8", "fp32")
        path = onnx_export.onnx_path(model_path(), "int8")
        assert path.name == "model-int8.onnx" and path.exists()
        assert path.stat().st_size < onnx_export.onnx_path(model_path()).stat().st_size / 3
        texts = varied_texts()[6:106]
        cosines = np.sum(int8.embed_sync(texts) * onnx_embedder.embed_sync(texts), axis=1)
        # Close (the mean over QQP is 0.994), but not the same vectors: thresholds shift.
        assert float(np.mean(cosines)) > 0.98 and float(np.min(cosines)) > 0.9
        assert float(np.max(cosines)) < 1 - 1e-6

    def test_setting_selects_the_precision_and_rejects_typos(self, settings):
        settings.SEMCACHE_EMBED_PRECISION = "int4"
        with pytest.raises(ValueError, match="fp32 or int8"):
            Embedder(backend="onnx")
        with pytest.raises(ValueError, match="fp32 or int8"):
            onnx_export.onnx_path(model_path(), "fp16")

    def test_export_command_exports_int8(self):
        import json
        from io import StringIO

        from django.core.management import call_command

        out = StringIO()
        call_command("export_embedder", "--json", "--precision", "int8", stdout=out)
        result = json.loads(out.getvalue())
        assert result["precision"] == "int8"
        assert result["path"] == str(onnx_export.onnx_path(model_path(), "int8"))
        assert 0.9 < result["min_cosine"] < 1 - 1e-6  # against sentence-transformers' fp32


class TestLengthBuckets:
    def test_every_text_once_shortest_first_and_lengths_close(self):
        from semcache.onnx_backend import BUCKET_SLACK, MAX_CHUNK, _length_buckets

        rng = np.random.default_rng(3)
        lengths = [int(n) for n in rng.integers(3, 90, 500)]
        chunks = _length_buckets(lengths)
        flat = [i for chunk in chunks for i in chunk]
        assert sorted(flat) == list(range(500))
        assert [lengths[i] for i in flat] == sorted(lengths)
        for chunk in chunks:
            shortest, longest = lengths[chunk[0]], lengths[chunk[-1]]
            assert len(chunk) <= MAX_CHUNK
            assert longest <= shortest * (1 + BUCKET_SLACK) + 1
        assert _length_buckets([]) == [] and _length_buckets([7]) == [[0]]
        assert _length_buckets([10] * 100) == [list(range(64)), list(range(64, 100))]

    def test_a_text_gets_the_same_vector_alone_or_in_any_batch(self, onnx_embedder):
        texts = varied_texts()
        together = onnx_embedder.embed_sync(texts)
        alone = np.stack([onnx_embedder.embed_sync([t])[0] for t in texts[::15]])
        np.testing.assert_allclose(together[::15], alone, atol=1e-5)
