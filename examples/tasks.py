"""An example consumer tasks.py: hubtasks' tasks at the root, plus a test gate and a notifier.

inv release --tag v1.2.3 --semver
"""

from invoke import task

from hubtasks import Facts, hook, ns


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

ns.add_task(test)
