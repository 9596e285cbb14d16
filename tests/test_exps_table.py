"""`make exps`: dvc exp show's CSV as a table of the changed params and the headline metrics."""
from lowlight.exps_table import main, param_keys, render

CSV = """Experiment,rev,typ,Created,parent,val_mae,best_val_psnr,pipeline.psnr,pipeline.ssim,psnr_delta,train.lr,train.epochs,quantiles.regions
,workspace,baseline,,,17.8227,20.6385,17.8784,0.7677,-3.6e-08,0.001,10,1
,main,baseline,2026-12-04,,17.8227,20.6385,17.8784,0.7677,-3.6e-08,0.001,10,1
glial-rant,821ba52,branch_base,2026-12-04,,17.8227,20.9668,17.7851,0.7664,-1.9e-07,0.0005,10,1
"""


def test_param_keys_are_dotted_leaves():
    assert param_keys({"train": {"lr": 1, "aug": {"flip": True}}, "seed": 0}) == {"train.lr", "train.aug.flip", "seed"}


def test_the_table_shows_changed_params_first_then_the_headline_under_short_names():
    out = render(CSV, {"train.lr", "train.epochs", "quantiles.regions"}).splitlines()
    header = out[0].split()
    assert header == ["experiment", "train.lr", "PSNR", "SSIM", "val", "PSNR", "val", "MAE"]  # "val PSNR", "val MAE"
    assert "train.epochs" not in out[0] and "psnr_delta" not in out[0]  # unchanged param, non-headline metric
    assert [line.split()[0] for line in out[2:]] == ["workspace", "main", "glial-rant"]
    assert out[4].split()[1:4] == ["0.0005", "17.7851", "0.7664"]
    assert max(map(len, out)) < 120


def test_no_changed_param_says_so_and_no_rows_says_what_to_run():
    assert render(CSV, set()).splitlines()[-1] == "(no param differs between these rows)"
    assert "dvc exp run" in render("", set())


def test_an_unreadable_params_file_is_one_line(tmp_path, capsys):
    assert main(["--params", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.yaml" in err
