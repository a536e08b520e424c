"""`lstmnlp generate --input`: many one-line prompts completed in batches, each as it would be alone."""

from __future__ import annotations

import pytest
import torch

from conftest import assert_user_error, run_cli

PROMPTS = ["ROMEO:", "", "What light through yonder", "First Citizen", "O"]


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    return path


def test_greedy_completion_equals_each_prompt_alone(tiny_lm_run, prompts_file, tmp_path):
    """Prompts of different lengths share batches (batch 2 splits them too); each line is what
    `generate --prompt P --lines 1` greedy writes for it alone, in input order."""
    options = ["--temperature", "0", "--max-tokens", "30"]
    out = tmp_path / "completed.txt"
    result = run_cli("generate", str(tiny_lm_run), "--input", str(prompts_file), "--output", str(out),
                     "--batch-size", "2", *options)
    assert result.returncode == 0, result.stderr
    completed = out.read_text(encoding="utf-8").splitlines()
    alone = [run_cli("generate", str(tiny_lm_run), "--prompt", prompt, "--lines", "1", *options).stdout
             for prompt in PROMPTS]
    assert completed == [text.removesuffix("\n") for text in alone]
    assert len({line.removeprefix(prompt) for line, prompt in zip(completed, PROMPTS)}) > 1


def test_sampled_completions_are_lines_and_repeatable(tiny_lm_run, prompts_file):
    options = ["--input", str(prompts_file), "--num-samples", "3", "--max-tokens", "40", "--seed", "5"]
    first = run_cli("generate", str(tiny_lm_run), *options)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.split("\n")[:-1]
    assert len(lines) == 3 * len(PROMPTS)
    for number, prompt in enumerate(PROMPTS):
        samples = lines[3 * number:3 * number + 3]
        assert all(sample.startswith(prompt) for sample in samples)
        assert all(len(sample) - len(prompt) <= 40 for sample in samples)
    assert len(set(lines)) > len(PROMPTS)  # the samples of a prompt differ
    assert run_cli("generate", str(tiny_lm_run), *options).stdout == first.stdout
    from_stdin = run_cli("generate", str(tiny_lm_run), *options[2:], "--input", "-", stdin=prompts_file.read_text())
    assert from_stdin.stdout == first.stdout


def test_beam_completion_does_not_depend_on_the_batch(tiny_lm_run):
    """Batched beam search over prompts of different lengths gives each prompt's n-best alone."""
    import lstmnlp

    lm = lstmnlp.load(tiny_lm_run)
    batched = lm.complete(PROMPTS, beam_size=3, num_samples=2, max_tokens=25, batch_size=8)
    alone = [lm.complete([prompt], beam_size=3, num_samples=2, max_tokens=25)[0] for prompt in PROMPTS]
    assert batched == alone
    assert all(len(found) == 2 and found[0].startswith(prompt) for found, prompt in zip(batched, PROMPTS))
    best = [lm.generate(prompt, beam_size=3, max_tokens=25, lines=1) for prompt in PROMPTS]
    assert [found[0] for found in batched] == [prompt + text for prompt, text in zip(PROMPTS, best)]


def test_primed_rows_hold_each_prompt_state(tiny_lm_run):
    """Equal lengths are read together and the states joined back in the rows' order."""
    from lstmnlp.ensemble import load_language_model_ensemble
    from lstmnlp.language_modeling import prime_ids
    from lstmnlp.line_completion import _prime_rows

    for runs in ([tiny_lm_run], [tiny_lm_run, tiny_lm_run]):
        model = load_language_model_ensemble(runs).model
        sequences = [[0, 5, 6, 7], [0], [0, 9, 8, 7], [0, 3, 4]]
        start, state = _prime_rows(model, sequences)
        assert start.tolist() == [7, 0, 7, 4]
        for row, ids in enumerate(sequences):
            alone_start, alone = prime_ids(model, torch.tensor([ids]))
            assert int(alone_start) == int(start[row])
            joined = state.select(torch.tensor([row]))
            for got, want in zip(_tensors(joined), _tensors(alone)):
                torch.testing.assert_close(got, want)


def _tensors(state) -> list[torch.Tensor]:
    members = getattr(state, "members", (state,))
    return [tensor for member in members for tensor in (member.hidden, member.cell)]


def test_input_option_errors(tiny_lm_run, prompts_file, tmp_path):
    generate = ("generate", str(tiny_lm_run))
    assert_user_error(run_cli(*generate, "--input", str(prompts_file), "--prompt", "x"), "--prompt", "--input")
    assert_user_error(run_cli(*generate, "--input", str(prompts_file), "--lines", "2"), "--lines")
    assert_user_error(run_cli(*generate, "--output", str(tmp_path / "o.txt")), "--output", "--input")
    assert_user_error(run_cli(*generate, "--input", str(prompts_file), "--batch-size", "0"), "--batch-size")
    assert_user_error(run_cli(*generate, "--input", str(tmp_path / "missing.txt")), "missing.txt")
    assert not (tmp_path / "o.txt").exists()
