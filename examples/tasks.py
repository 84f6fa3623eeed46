"""An example consumer tasks.py: hubtasks' tasks at the root, plus a test gate and a notifier.

inv release --tag v1.2.3 --semver
"""

from invoke import Collection, task

import hubtasks
from hubtasks import Facts, hook


@task
def test(c):
    """Run the project's tests."""
    c.run("echo 'running the test suite…'")


@task
def notify(c, facts: Facts):
    """Tell the team what was published (here: append to a file)."""
    with open("published.log", "a") as log:
        log.write(f"{facts.image}@{facts.digest} {' '.join(facts.tags)}\n")


# A failing test gate stops the release before anything is built or pushed.
hook("pre_release", lambda c, facts: test(c))
hook("post_release", notify)

# A collection of our own, with hubtasks' tasks in it: adding to `hubtasks.ns` itself would
# change the collection every other user of hubtasks in this process sees.
ns = Collection.from_module(hubtasks)
ns.add_task(test)
