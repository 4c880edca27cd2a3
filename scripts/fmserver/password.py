"""Change a user's password the way a FlexMeasures admin would.

Run by ``scripts/flexmeasures-server set-password EMAIL PASSWORD`` with
FlexMeasures' own venv python and HOME pointing at the rendered config:

    python password.py EMAIL PASSWORD

The password is hashed by Flask-Security (as configured for the server), and the
user's token uniquifier changes, so the user's existing access tokens stop working,
exactly as when an admin changes a password in FlexMeasures.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Set the password of the user with the given e-mail address."""
    email, password = sys.argv[1:3]

    # FlexMeasures is slow to import and only exists in the server's venv.
    from flask_security.utils import hash_password
    from flexmeasures.app import create
    from flexmeasures.data import db
    from flexmeasures.data.models.user import User
    from sqlalchemy import select

    app = create()
    with app.app_context():
        user = db.session.scalars(select(User).filter_by(email=email)).one_or_none()
        if user is None:
            sys.exit(f"no user {email}")
        user.password = hash_password(password)
        app.security.datastore.set_uniquifier(user)
        db.session.commit()
    print(f"password of {email} changed")


if __name__ == "__main__":
    main()
