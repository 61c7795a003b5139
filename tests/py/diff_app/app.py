# app.py - the program of the --diff test (tests/integration/test_render_run.c): the test
# copies this directory twice and, in the second copy, removes the `import heavy` line and
# shifts the lines below it, as a fix would.
import heavy  # the import the fix removes
from shared import build

data = build(20000)
print("built", len(data), flush=True)
