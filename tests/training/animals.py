"""Animal-MNIST as ImageFolder datasets: the harness's (testkit/animals.py), under the name the trainer's
and the server's tests import."""

from testkit.animals import NAMES, animal_pngs, write_folder, write_zip  # noqa: F401
