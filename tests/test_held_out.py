"""``evaluate --held-out-of MODEL`` finds the scene a prediction covers and scores what was
held out of it: a val/test scene whole, a train scene's held-out region."""

import pytest
from builders import scene_row

import geounet
from geounet.config import PredictConfig
from geounet.errors import ModelFileError
from geounet.evaluation import evaluate
from geounet.held_out import held_out_of
from geounet.training import TrainConfig, read_dataset_csv, train

CPU = PredictConfig(device="cpu", runtime="torch")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("held")
    scenes, labels = scene_row(tmp, n=4)
    (tmp / "d.csv").write_text(
        "scene,labels,split\n" + "".join(f"{s.name},{labels.name},{sp}\n" for s, sp in
                                         zip(scenes, ["train", "train", "val", "test"],
                                             strict=True)))
    r = train(read_dataset_csv(tmp / "d.csv"), None, tmp / "m.safetensors",
              TrainConfig(arch="unet", arch_args={"base_channels": 8, "depth": 2}, epochs=1,
                          steps_per_epoch=4, batch_size=4, tile_size_px=64, overlap_px=16,
                          device="cpu", workers=0, tensorboard=False, val_region="east:0.25"))
    masks = []
    for k, s in enumerate(scenes):
        masks.append(tmp / f"mask{k}.tif")
        geounet.predict(s, None, model=r.path, mask_out=masks[-1], predict=CPU)
    return r.path, scenes, labels, masks


def test_val_and_test_scenes_are_scored_whole(trained):
    model, scenes, labels, masks = trained
    for k, split in ((2, "val"), (3, "test")):
        h = held_out_of(model, masks[k], labels)
        assert (h.scene, h.split, h.region, h.rows) == (scenes[k].name, split, None, None)
        a = evaluate(masks[k], labels, held_out_of=model)
        b = evaluate(masks[k], labels)
        assert a.pixel == b.pixel and a.buildings == b.buildings


def test_train_scene_is_scored_on_its_held_out_region(trained):
    model, scenes, labels, masks = trained
    h = held_out_of(model, masks[0], labels)
    assert h.scene == scenes[0].name and h.region.startswith("map:500192.000000,")
    a = evaluate(masks[0], labels, held_out_of=model)
    b = evaluate(masks[0], labels, region="east:0.25")
    assert a.pixel == b.pixel and a.region == h.region
    assert a.pixel.tp + a.pixel.fn < evaluate(masks[0], labels).pixel.tp + \
        evaluate(masks[0], labels).pixel.fn


def test_a_scene_not_held_out_is_refused(trained, tmp_path):
    model, scenes, labels, masks = trained
    no_region = train(read_dataset_csv(masks[0].parent / "d.csv")[:1], None,
                      tmp_path / "n.safetensors",
                      TrainConfig(arch="unet", arch_args={"base_channels": 8, "depth": 2},
                                  epochs=1, steps_per_epoch=1, batch_size=2, tile_size_px=64,
                                  overlap_px=16, device="cpu", workers=0, tensorboard=False,
                                  val_region=None))
    with pytest.raises(ModelFileError, match="held out nothing of scene 'tile0.tif'"):
        evaluate(masks[0], labels, held_out_of=no_region.path)
