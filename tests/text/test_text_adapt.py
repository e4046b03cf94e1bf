"""Adaptation maths: functional optimisers against torch.optim, inner loops and FO-MAML / Reptile outer updates
against hand-unrolled module code, trainer state round trips, the language adversary, and fine-tuning from a pair
file."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from metaxfer.errors import EpisodeError, MetaxferError
from metaxfer.text.adapt import (
    JointTrainer,
    MetaConfig,
    MetaTrainer,
    adapt,
    adapt_tasks,
    fine_tune,
    translation_loss,
)
from metaxfer.text.adversary import AdversaryConfig, LanguageAdversary, confusion_loss, pool_states
from metaxfer.text.compare import evaluate_pair
from metaxfer.text.corpora import ParallelCorpus, read_tsv
from metaxfer.text.optim import OptimizerSpec, init_optimizer_state, optimizer_update, parameters_of
from metaxfer.text.sampling import PairSampler
from metaxfer.text.tokenizer import PAD, Tokenizer, TranslationBatch, encode_pairs
from metaxfer.text.transformer import Seq2SeqTransformer

pytest.importorskip("babel")


WORDS = {
    "fr": [("house", "maison"), ("cat", "chat"), ("dog", "chien"), ("water", "eau"), ("sun", "soleil"),
           ("moon", "lune"), ("tree", "arbre"), ("book", "livre"), ("bread", "pain"), ("wine", "vin")],
    "es": [("house", "casa"), ("cat", "gato"), ("dog", "perro"), ("water", "agua"), ("sun", "sol"),
           ("moon", "luna"), ("tree", "árbol"), ("book", "libro"), ("bread", "pan"), ("wine", "vino")],
}


def _corpus(lang: str) -> ParallelCorpus:
    pairs = WORDS[lang]
    return ParallelCorpus("en", lang, [s for s, _ in pairs], [t for _, t in pairs], [s for s, _ in pairs])


def _setup(seed: int = 0) -> tuple[Seq2SeqTransformer, Tokenizer, PairSampler]:
    tok = Tokenizer(languages=["fr", "es"])
    torch.manual_seed(seed)
    model = Seq2SeqTransformer(vocab_size=tok.vocab_size, d_model=32, heads=2, encoder_layers=1, decoder_layers=1,
                               ff_dim=64, dropout=0.0, max_len=16)
    sampler = PairSampler(tok, [_corpus("fr"), _corpus("es")], max_len=16, seed=seed)
    return model, tok, sampler


def _module_sgd(model: torch.nn.Module, params: dict, batches: list[TranslationBatch], lr: float) -> dict:
    """Reference inner loop: a real module copy, loss.backward(), p -= lr * grad."""
    net = copy.deepcopy(model)
    net.load_state_dict(params)
    for batch in batches:
        net.zero_grad()
        logits = net(batch.src, batch.tgt_in)
        F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD).backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= lr * p.grad
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _close(a: dict, b: dict, atol: float = 1e-5) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol) for k in a)


# ------------------------------------------------------------------------------------------------- optimisers
def test_functional_adam_matches_torch_adam() -> None:
    torch.manual_seed(0)
    params = {"w": torch.randn(4, 3), "b": torch.randn(3)}
    spec = OptimizerSpec(kind="adam", lr=0.01, betas=(0.9, 0.99), eps=1e-8, clip_norm=None)
    ref = {k: torch.nn.Parameter(v.clone()) for k, v in params.items()}
    opt = torch.optim.Adam(ref.values(), lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    state = init_optimizer_state(spec, params)
    for step in range(4):
        grads = {k: torch.randn_like(v) * (step + 1) for k, v in params.items()}
        params, state, _ = optimizer_update(spec, params, grads, state)
        for k, p in ref.items():
            p.grad = grads[k].clone()
        opt.step()
    assert _close(params, {k: v.detach() for k, v in ref.items()}, atol=1e-6)
    assert int(state["step"]) == 4


def test_sgd_weight_decay_and_global_norm_clipping() -> None:
    params = {"a": torch.tensor([1.0, 1.0]), "b": torch.tensor([2.0])}
    grads = {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([4.0])}  # global norm 5
    spec = OptimizerSpec(kind="sgd", lr=0.1, clip_norm=1.0)
    new, _, norm = optimizer_update(spec, params, grads, init_optimizer_state(spec, params))
    assert norm == pytest.approx(5.0)
    assert torch.allclose(new["a"], torch.tensor([1.0 - 0.1 * 0.6, 1.0]), atol=1e-5)
    assert torch.allclose(new["b"], torch.tensor([2.0 - 0.1 * 0.8]), atol=1e-5)
    keep, _, _ = optimizer_update(spec, params, {"a": None, "b": grads["b"]}, {"step": torch.tensor(0)})
    assert torch.equal(keep["a"], params["a"])
    with pytest.raises(ValueError, match="'sgd' or 'adam'"):
        OptimizerSpec(kind="rmsprop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="learning rate must be positive"):
        OptimizerSpec(lr=0.0)


# ------------------------------------------------------------------------------------------------ inner loops
def test_adapt_equals_a_hand_unrolled_module_loop() -> None:
    model, _, sampler = _setup()
    params = parameters_of(model)
    batches = [sampler.batch(6, lang="fr") for _ in range(3)]
    spec = OptimizerSpec(kind="sgd", lr=0.2, clip_norm=None)
    fast, losses = adapt(model, params, lambda i: batches[i], steps=3, optimizer=spec)
    assert _close(fast, _module_sgd(model, params, batches, 0.2))
    assert len(losses) == 3 and losses[0] == pytest.approx(float(translation_loss(model, params, batches[0])[0]))
    assert _close(params, parameters_of(model))  # the start point and the module are untouched


def test_task_parallel_inner_loop_equals_one_task_at_a_time() -> None:
    model, _, sampler = _setup(seed=6)
    params = parameters_of(model)
    per_task = [[sampler.batch(5, lang=x) for x in ("fr", "es", "fr")] for _ in range(3)]
    stacked = [TranslationBatch.stack(b) for b in per_task]
    for spec in (OptimizerSpec(kind="sgd", lr=0.3, clip_norm=0.5), OptimizerSpec(kind="adam", lr=1e-2)):
        fast, losses = adapt_tasks(model, params, lambda i: stacked[i], tasks=3, steps=3, optimizer=spec)
        assert losses.shape == (3, 3)
        for t in range(3):
            one, one_losses = adapt(model, params, lambda i: per_task[i][t], steps=3, optimizer=spec)
            assert _close({k: v[t] for k, v in fast.items()}, one, atol=1e-5)
            assert losses[:, t].tolist() == pytest.approx(one_losses, abs=1e-5)


def test_fomaml_outer_step_is_the_query_gradient_at_adapted_parameters() -> None:
    model, _, sampler = _setup(seed=1)
    cfg = MetaConfig(algorithm="fomaml", inner_steps=2, inner=OptimizerSpec(kind="sgd", lr=0.1, clip_norm=None),
                     outer=OptimizerSpec(kind="sgd", lr=1.0, clip_norm=None), support_size=4, query_size=3,
                     meta_batch=1, label_smoothing=0.0)
    trainer = MetaTrainer(model, sampler, config=cfg)
    theta = dict(trainer.params)
    saved = sampler.state_dict()
    lang = sampler.random_language()
    support, query = sampler.task(lang, support=4, query=3)
    sampler.load_state_dict(saved)
    metrics = trainer.step()
    phi = _module_sgd(model, theta, [support, support], 0.1)
    net = copy.deepcopy(model)
    net.load_state_dict(phi)
    logits = net(query.src, query.tgt_in)
    q_loss = F.cross_entropy(logits.flatten(0, 1), query.tgt_out.flatten(), ignore_index=PAD)
    q_loss.backward()
    expected = {k: theta[k] - p.grad for k, p in net.named_parameters()}
    assert _close(trainer.params, expected, atol=1e-5)
    assert metrics["query_loss"] == pytest.approx(float(q_loss.detach()), abs=1e-5)


def test_reptile_outer_step_interpolates_towards_the_mean_adapted_parameters() -> None:
    model, _, sampler = _setup(seed=2)
    eps = 0.4
    cfg = MetaConfig(algorithm="reptile", inner_steps=2, inner=OptimizerSpec(kind="sgd", lr=0.1, clip_norm=None),
                     outer=OptimizerSpec(kind="sgd", lr=eps, clip_norm=None), support_size=4, meta_batch=2,
                     label_smoothing=0.0)
    trainer = MetaTrainer(model, sampler, config=cfg)
    theta = dict(trainer.params)
    saved = sampler.state_dict()
    langs = [sampler.random_language() for _ in range(2)]
    steps = [[sampler.batch(4, lang=x) for x in langs] for _ in range(2)]  # the trainer's order: step, then task
    phis = [_module_sgd(model, theta, [steps[0][t], steps[1][t]], 0.1) for t in range(2)]
    sampler.load_state_dict(saved)
    trainer.step()
    expected = {k: theta[k] + eps * ((phis[0][k] + phis[1][k]) / 2 - theta[k]) for k in theta}
    assert _close(trainer.params, expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["joint", "joint-adv", "fomaml", "reptile"])
def test_trainer_state_dict_round_trip_resumes_identically(kind: str) -> None:
    def build() -> JointTrainer | MetaTrainer:
        model, _, sampler = _setup(seed=3)
        if kind.startswith("joint"):
            adversary = AdversaryConfig(weight=0.5, hidden=16) if kind == "joint-adv" else None
            return JointTrainer(model, sampler, batch_size=8, adversary=adversary)
        return MetaTrainer(model, sampler, config=MetaConfig(algorithm=kind, inner_steps=2, support_size=4,
                                                             query_size=4, meta_batch=2))

    a = build()
    for _ in range(2):
        metrics = a.step()
    assert all(isinstance(v, float) for v in metrics.values())
    state = a.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    b = build()
    b.load_state_dict({k: v.clone() for k, v in state.items()})
    assert a.step() == b.step()
    assert _close(a.params, b.params, atol=0.0)


def test_joint_training_learns_the_meta_training_pairs() -> None:
    model, tok, sampler = _setup(seed=4)
    trainer = JointTrainer(model, sampler, optimizer=OptimizerSpec(kind="adam", lr=3e-3), batch_size=20,
                           label_smoothing=0.0)
    first = trainer.step()["loss"]
    for _ in range(150):
        last = trainer.step()
    assert last["loss"] < 0.3 * first and last["token_acc"] > 0.8


def test_pair_sampler_errors_and_mixed_batches() -> None:
    model, tok, sampler = _setup()
    with pytest.raises(EpisodeError, match="en-fr has 10 training pairs, fewer than support 8 \\+ query 8"):
        sampler.task("fr", support=8, query=8)
    with pytest.raises(EpisodeError, match="at least one corpus"):
        PairSampler(tok, [], max_len=16)
    mixed = sampler.batch(64)
    assert set(mixed.lang.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="'fomaml' or 'reptile'"):
        MetaConfig(algorithm="maml")  # type: ignore[arg-type]


def test_divergence_is_reported_with_a_fix() -> None:
    model, _, sampler = _setup()
    params = {k: v * float("inf") if k == "embed.weight" else v for k, v in parameters_of(model).items()}
    with pytest.raises(MetaxferError, match="lower the learning rate"):
        adapt(model, params, sampler.batch(4, lang="fr"), steps=1, optimizer=OptimizerSpec(kind="sgd", lr=0.1))


# ------------------------------------------------------------------------------------------------- adversary
def test_pool_states_skips_the_tag_and_padding() -> None:
    memory = torch.arange(8, dtype=torch.float32).view(1, 4, 2)
    keep = torch.tensor([[True, True, True, False]])
    assert pool_states(memory, keep).tolist() == [[3.0, 4.0]]  # mean of positions 1 and 2


def test_confusion_loss_is_zero_only_for_uniform_predictions() -> None:
    assert float(confusion_loss(torch.zeros(3, 5))) == pytest.approx(0.0, abs=1e-7)
    assert float(confusion_loss(torch.tensor([[5.0, 0.0, 0.0]]))) > 1.0


def test_discriminator_learns_the_language_and_its_term_only_reaches_the_encoder() -> None:
    model, tok, sampler = _setup(seed=5)
    adversary = LanguageAdversary(AdversaryConfig(weight=1.0, hidden=32,
                                                  optimizer=OptimizerSpec(kind="adam", lr=1e-2)),
                                  d_model=32, n_languages=2, seed=0)
    batch = encode_pairs(tok, [s for s, _ in WORDS["fr"]] * 2, [t for _, t in WORDS["fr"] + WORDS["es"]],
                         ["fr"] * 10 + ["es"] * 10, max_len=16)
    params = {k: v.requires_grad_(True) for k, v in parameters_of(model).items()}
    for i in range(60):
        memory, keep = functional_call(model, params, (batch.src,))
        term, metrics = adversary.step(memory.detach(), keep, batch.lang, iteration=i)
    assert metrics["d_acc"] == 1.0 and metrics["d_loss"] < 0.1  # the tag makes the languages separable
    _, memory, keep = functional_call(model, params, (batch.src, batch.tgt_in), {"return_memory": True})
    term, _ = adversary.step(memory, keep, batch.lang, iteration=100)
    grads = dict(zip(params, torch.autograd.grad(term, list(params.values()), allow_unused=True)))
    assert any(g is not None and g.abs().sum() > 0 for k, g in grads.items() if k.startswith("encoder."))
    assert all(g is None or g.abs().sum() == 0 for k, g in grads.items() if k.startswith("decoder."))
    warm = LanguageAdversary(AdversaryConfig(warmup=10), d_model=32, n_languages=2)
    term, _ = warm.step(memory, keep, batch.lang, iteration=3)
    assert float(term.detach()) == 0.0


# ------------------------------------------------------------------------------------------ from a pair file
def test_fine_tuning_on_a_small_pair_file_improves_chrf(tmp_path: Path) -> None:
    path = tmp_path / "en-de.tsv"
    pairs = [("house", "Haus"), ("mouse", "Maus"), ("hand", "Hand"), ("water", "Wasser"), ("garden", "Garten"),
             ("winter", "Winter"), ("summer", "Sommer"), ("finger", "Finger"), ("book", "Buch"), ("name", "Name"),
             ("", "leer"), ("apple", "Apfel")]
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    corpus = read_tsv(path, src_lang="en", tgt_lang="de")
    assert len(corpus) == 11 and corpus.metadata["dropped"] == {"source: empty": 1}
    tok = Tokenizer(languages=["de"])
    torch.manual_seed(0)
    model = Seq2SeqTransformer(vocab_size=tok.vocab_size, d_model=32, heads=2, encoder_layers=1, decoder_layers=1,
                               ff_dim=64, dropout=0.0, max_len=16)
    start = parameters_of(model)
    before = evaluate_pair(model, tok, start, corpus)
    params, losses = fine_tune(model, start, tok, corpus, steps=120, optimizer=OptimizerSpec(lr=3e-3), batch_size=8)
    after = evaluate_pair(model, tok, params, corpus)
    assert losses[-1] < losses[0]
    assert after["chrf"] > before["chrf"] + 30 and after["exact"] > 50
