"""Writes example-notebooks/ (outputs cleared):  python tools/make_example_notebooks.py [FOLDER]

The notebooks are kept as this script so their text reviews as code; run it after editing and commit both."""
import sys
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

META = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}}


def nb(*cells):
    book = new_notebook(cells=list(cells), metadata=META)
    for index, cell in enumerate(book.cells):
        cell["id"] = f"cell-{index:02d}"
    return book


def md(text):
    return new_markdown_cell(text.strip("\n"))


def code(text, error=False):
    cell = new_code_cell(text.strip("\n"))
    if error:
        cell.metadata["tags"] = ["raises-exception"]
    return cell


quickstart = nb(
    md("""
# Quickstart: snapshot this kernel, bake it into a verified image, run a cell inside it

`%snapshot save` captures the environment this kernel runs in (Python to the micro version, every package and how it
was installed, torch's CUDA/cuDNN build, the NVIDIA driver and GPUs, the OS and its libraries) into
`.yolosnap/NAME/snapshot.json`, a readable manifest to commit beside the code. `%snapshot build` bakes it into a
Docker image and proves it: the same capture runs inside the image and must diff clean. `%%in_env` then runs cells
in that image, with their output, figures and errors coming back here."""),
    code("%load_ext jupyter_yolosnap"),
    code("%snapshot save dev-kernel"),
    md("""
What the snapshot holds, grouped as the manifest is. `%snapshot list` shows every snapshot of this folder."""),
    code("%snapshot show dev-kernel"),
    md("""
## Build and check

The build shows a progress bar and a collapsible log. It ends by running the capture inside the image and diffing it
against the manifest: the image is tagged only if nothing drifted. The Dockerfile sits beside the manifest, ready to
review and commit. `%snapshot check` re-proves an image at any time; it ends with the GPU-fit verdict (will the
snapshot's CUDA code run on this host's driver and GPUs, and how) and whether the engine can give containers GPUs."""),
    code("%snapshot build dev-kernel"),
    code("%snapshot check dev-kernel"),
    code("print(open('.yolosnap/dev-kernel/Dockerfile').read())"),
    md("""
## Run cells inside the image

`%%in_env` runs a cell in a warm kernel inside a container of the snapshot's image. `--push` sends notebook variables
in, `--pull` brings results back; variables stay there from cell to cell. The working directory is mounted at the
same path and files written there are yours. Add `--gpus auto` on a GPU machine."""),
    code("losses = [1.0, 0.62, 0.47, 0.41, 0.4]"),
    code("""
%%in_env dev-kernel --push losses --pull summary
import os, platform
import matplotlib.pyplot as plt
print('in a container:', os.path.exists('/.dockerenv'), 'Python', platform.python_version(), 'host', platform.node())
plt.plot(losses); plt.title('loss'); plt.show()
summary = {'best': min(losses), 'epochs': len(losses)}"""),
    code("summary"),
    md("""
A name that does not exist is one line that says what to do (this cell fails on purpose):"""),
    code("%snapshot show dev-kernal", error=True),
    md("""
The warm kernel stays until it is stopped (or this notebook's kernel restarts):"""),
    code("%snapshot stop dev-kernel"),
)

training = nb(
    md("""
# Train YOLO in the snapshot's image: live logs, loss curves, GPU telemetry

Real YOLO training with the `ultralytics` package, in a restored container of a snapshotted environment
(`torch==2.14.1 torchvision==0.29.1 ultralytics`, about 6 GB). The notebook makes a tiny synthetic detection data
set, writes a `train.py` in the usual form (`python train.py --img ... --epochs ... --data ...`) and runs it with
`%snapshot run`: the log streams here, `results.csv` is plotted after the run, and on a GPU machine the GPUs'
utilisation, memory, temperature and power are sampled into `gpu.csv` and plotted under the losses. The model is
built from its YAML (no pretrained weights, no downloads), trains on the CPU when there is no GPU, and uses the GPU
when there is one (`--gpus auto`)."""),
    code("%load_ext jupyter_yolosnap"),
    md("""
The environment: this kernel's own Python when it has the YOLO packages, otherwise a venv of its own made here
(a few minutes the first time; pip's cache makes it quick after that)."""),
    code("""
import importlib.util, pathlib, subprocess, sys, venv
if importlib.util.find_spec('ultralytics'):
    python = sys.executable
else:
    env = pathlib.Path('yolo-env').resolve()
    if not (env / 'bin' / 'python').exists():
        venv.create(env, with_pip=True)
    python = str(env / 'bin' / 'python')
    subprocess.run([python, '-m', 'pip', 'install', '-q', '--disable-pip-version-check', 'torch==2.14.1',
                    'torchvision==0.29.1', 'ultralytics==8.4.190'], check=True, capture_output=True)
print(subprocess.run([python, '-c', 'import torch, ultralytics; print("torch", torch.__version__, '
                      '"ultralytics", ultralytics.__version__)'], capture_output=True, text=True, check=True).stdout)"""),
    code("%snapshot save yolo-v8 --python {python}"),
    md("""
The build bakes those packages into an image and proves it (the capture inside the image diffs clean). Its summary
ends with the GPU-fit verdict: whether this host's driver and GPUs can run the snapshot's CUDA 13.0 build, and how."""),
    code("%snapshot build yolo-v8"),
    md("""
## A tiny detection data set

Eight training and four validation images with yellow boxes on grey, YOLO label files (`class cx cy w h`) and the
data YAML, made inside the snapshot's container (its Pillow):"""),
    code("""
%%writefile make_data.py
import os, random
from PIL import Image, ImageDraw
random.seed(0)
root = os.path.abspath('dataset')
for split, count in (('train', 8), ('val', 4)):
    for kind in ('images', 'labels'):
        os.makedirs(f'{root}/{kind}/{split}', exist_ok=True)
    for i in range(count):
        image = Image.new('RGB', (64, 64), (random.randint(20, 80),) * 3)
        draw, labels = ImageDraw.Draw(image), []
        for _ in range(random.randint(1, 3)):
            w, h = random.randint(12, 28), random.randint(12, 28)
            x, y = random.randint(0, 64 - w), random.randint(0, 64 - h)
            draw.rectangle([x, y, x + w, y + h], fill=(230, 200, 40))
            labels.append(f'0 {(x + w / 2) / 64:.4f} {(y + h / 2) / 64:.4f} {w / 64:.4f} {h / 64:.4f}')
        image.save(f'{root}/images/{split}/{i}.png')
        with open(f'{root}/labels/{split}/{i}.txt', 'w') as f:
            f.write('\\n'.join(labels) + '\\n')
with open('data.yaml', 'w') as f:
    f.write(f'path: {root}\\ntrain: images/train\\nval: images/val\\nnames:\\n  0: box\\n')
print('12 images, data.yaml written')"""),
    code("%snapshot run yolo-v8 -- python make_data.py"),
    md("""
## Train

`train.py` in the form YOLO users run: a YOLOv8n built from its YAML, seeded, on the GPU when there is one."""),
    code("""
%%writefile train.py
import argparse, os
import torch
from ultralytics import YOLO

parser = argparse.ArgumentParser()
parser.add_argument('--img', type=int, default=64)
parser.add_argument('--batch', type=int, default=4)
parser.add_argument('--epochs', type=int, default=2)
parser.add_argument('--data', default='data.yaml')
args = parser.parse_args()
model = YOLO('yolov8n.yaml')  # built from its YAML: no pretrained weights, nothing downloaded
model.train(data=args.data, imgsz=args.img, batch=args.batch, epochs=args.epochs, seed=0, deterministic=True,
            device=0 if torch.cuda.is_available() else 'cpu', workers=0, amp=False, plots=False,
            pretrained=False, project=os.path.abspath('runs/train'), name='exp', exist_ok=True)"""),
    code("%snapshot run yolo-v8 --gpus auto -- python train.py --img 64 --batch 4 --epochs 2 --data data.yaml"),
    md("""
The plot above is `runs/train/exp/results.csv`, one row per epoch (with GPUs, the GPU telemetry is its last row).
Every run log starts with its provenance: the snapshot and its manifest digest, the image, and the git commit of
this folder (and whether it had uncommitted changes), so a result can be traced to the environment that made it."""),
    code("""
import csv, glob
with open('runs/train/exp/results.csv') as f:
    rows = list(csv.DictReader(f, skipinitialspace=True))
print(len(rows), 'epochs;', 'box loss', [round(float(r['train/box_loss']), 3) for r in rows])
log = sorted(glob.glob('.yolosnap-runs/yolo-v8-*.log'))[-1]
print(''.join(open(log).readlines()[:4]))"""),
    md("""
A script that fails fails the cell, with its exit code and its log (this cell fails on purpose: no such data YAML):"""),
    code("%snapshot run yolo-v8 -- python train.py --data missing.yaml", error=True),
)

drift = nb(
    md("""
# "It worked last week": see what changed, and get the old result back

An evaluation step picks the newest checkpoint by the version tag in its name. It worked; then a routine
`pip install -U` moved `packaging` to a release that no longer accepts a tag like `nightly`, and the step fails. A
snapshot taken while it worked says exactly what changed, and runs the old code in the old environment.

The story's environment is a venv of its own, made here, so this notebook never changes the kernel it runs in;
`--python` points the magics at it."""),
    code("%load_ext jupyter_yolosnap"),
    code("""
import pathlib, subprocess, venv
env = pathlib.Path('eval-env').resolve()
venv.create(env, with_pip=True)
python = str(env / 'bin' / 'python')


def install(*requirements):
    subprocess.run([python, '-m', 'pip', 'install', '-q', '--disable-pip-version-check', *requirements],
                   check=True, capture_output=True)

install('packaging==21.3')"""),
    code("""
%%writefile evaluate.py
from packaging.version import parse
import packaging
checkpoints = ['ckpt-1.0', 'ckpt-1.1', 'ckpt-1.1-rc2', 'ckpt-nightly']
best = max(checkpoints, key=lambda name: parse(name.split('-', 1)[1]))
print(f'packaging {packaging.__version__}: newest checkpoint {best}')"""),
    code("""
def evaluate():
    done = subprocess.run([python, 'evaluate.py'], capture_output=True, text=True)
    print(done.stdout.strip() or 'failed: ' + done.stderr.strip().splitlines()[-1])

evaluate()"""),
    md("""
It works: snapshot that environment and bake it into a verified image."""),
    code("%snapshot save eval-env --python {python}"),
    code("%snapshot build eval-env"),
    md("""
## A week later

Someone upgrades the environment's packages, and the evaluation breaks:"""),
    code("""
install('-U', 'packaging')
evaluate()"""),
    md("""
`%snapshot diff NAME --python ...` names what changed since the snapshot (`%snapshot diff NAME` alone compares with
this kernel):"""),
    code("%snapshot diff eval-env --python {python}"),
    md("""
The same code in the snapshot's image gives the old result back, beside the upgraded environment's failure above:"""),
    code("%snapshot run eval-env -- python evaluate.py"),
    md("""
Saving again keeps the earlier revision: `%snapshot history NAME` lists them and `NAME@N` names one, e.g.
`%snapshot diff eval-env@1 eval-env`."""),
    code("%snapshot save eval-env --python {python}"),
    code("%snapshot history eval-env"),
)

folder = sys.argv[1] if len(sys.argv) > 1 else "example-notebooks"
for name, book in (("01-quickstart", quickstart), ("02-yolo-training", training), ("03-drift", drift)):
    nbformat.write(book, f"{folder}/{name}.ipynb")
