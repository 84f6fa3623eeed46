import sys
from pathlib import Path

# devtools/ (the throwaway daemon and registry) lives at the repository root, next to tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
