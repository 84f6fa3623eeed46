"""Releasing from nox with hubtasks' Python API (no Invoke tasks involved).

    nox -s release -- v1.2.3
Settings come from the environment and ./.env, exactly as for `inv release`.
"""

import nox

import hubtasks


@nox.session(venv_backend="none")
def release(session: nox.Session) -> None:
    tags = session.posargs or ["latest"]
    settings = hubtasks.load_settings({"tags": tags})
    try:
        result = hubtasks.release(settings)
    except hubtasks.HubError as error:
        session.error(str(error))
    for item in result.published:
        session.log(f"published {item.reference}")
