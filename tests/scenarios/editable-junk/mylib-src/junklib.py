from pathlib import Path

HERE = Path(__file__).parent
LABELS = (HERE / "assets" / "labels.txt").read_text().split()
