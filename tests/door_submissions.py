"""Learner code for the door assignment, right and wrong.

Each entry is the full source of a solution cell, as a learner would type it.
The code may use ``np``, ``fr_utils``, ``img_to_encoding`` and ``THRESHOLD``,
which the notebook's first cells define.  ``tests/test_door_notebook.py`` runs
them against the public checks directly; ``tests/test_autograde_door.py`` puts
them into notebooks and autogrades them.
"""

from __future__ import annotations

from textwrap import dedent, indent


def _define(head: str, body: str) -> str:
    return head + "\n" + indent(dedent(body).strip("\n"), "    ") + "\n"


def _database(body: str) -> str:
    return _define("def build_database(image_paths_by_name, model):", body)


def _verify(body: str) -> str:
    return _define("def verify(image_path, identity, database, model, threshold=THRESHOLD):", body)


def _who(body: str) -> str:
    return _define("def who_is_it(image_path, database, model, threshold=THRESHOLD):", body)


# -- build_database -----------------------------------------------------------

CORRECT_DATABASE = {
    "loop": _database("""
        database = {}
        for name, path in image_paths_by_name.items():
            database[name] = img_to_encoding(path, model)
        return database
    """),
    "comprehension": _database("""
        return {person: fr_utils.img_to_encoding(photo, model) for person, photo in image_paths_by_name.items()}
    """),
    "batched": _database("""
        names = list(image_paths_by_name)
        if not names:
            return {}
        rows = fr_utils.encode_images([image_paths_by_name[n] for n in names], model)
        return {n: rows[i : i + 1] for i, n in enumerate(names)}
    """),
}

WRONG_DATABASE = {
    # the loop variable of an earlier loop: every name gets the last photo
    "last_photo_for_all": _database("""
        for name in image_paths_by_name:
            path = image_paths_by_name[name]
        return {name: img_to_encoding(path, model) for name in image_paths_by_name}
    """),
    "flattened": _database("""
        return {name: img_to_encoding(path, model)[0] for name, path in image_paths_by_name.items()}
    """),
    "names_from_files": _database("""
        from pathlib import Path
        return {Path(path).parent.name: img_to_encoding(path, model) for path in image_paths_by_name.values()}
    """),
}

# -- verify ---------------------------------------------------------------------

CORRECT_VERIFY = {
    "norm": _verify("""
        if identity not in database:
            return np.inf, False
        encoding = img_to_encoding(image_path, model)
        dist = np.linalg.norm(encoding - database[identity])
        door_open = dist < threshold
        if door_open:
            print("It's " + str(identity) + ", welcome in!")
        else:
            print("It's not " + str(identity) + ", please go away")
        return dist, door_open
    """),
    "sqrt_sum_if_else": _verify("""
        reference = database.get(identity)
        if reference is None:
            print(f"{identity} is not enrolled: please go away")
            return float("inf"), False
        dist = float(np.sqrt(np.sum(np.square(img_to_encoding(image_path, model) - reference))))
        if dist < threshold:
            print(f"It's {identity}, welcome in!")
            door_open = True
        else:
            print(f"It's not {identity}, please go away")
            door_open = False
        return dist, door_open
    """),
    "try_keyerror": _verify("""
        try:
            enrolled = database[identity]
        except KeyError:
            return np.inf, False
        diff = (img_to_encoding(image_path, model) - enrolled).ravel()
        dist = np.sqrt(diff @ diff)
        door_open = bool(dist < threshold)
        print(("It's %s, welcome in!" if door_open else "It's not %s, please go away") % identity)
        return dist, door_open
    """),
}

WRONG_VERIFY = {
    "greater_than": _verify("""
        if identity not in database:
            return np.inf, False
        dist = np.linalg.norm(img_to_encoding(image_path, model) - database[identity])
        door_open = dist > threshold
        print(f"It's {identity}, welcome in!" if door_open else f"It's not {identity}, please go away")
        return dist, door_open
    """),
    "squared": _verify("""
        if identity not in database:
            return np.inf, False
        dist = np.sum((img_to_encoding(image_path, model) - database[identity]) ** 2)
        door_open = dist < threshold
        print(f"It's {identity}, welcome in!" if door_open else f"It's not {identity}, please go away")
        return dist, door_open
    """),
    "closest_person": _verify("""
        if identity not in database:
            return np.inf, False
        encoding = img_to_encoding(image_path, model)
        dist = min(np.linalg.norm(encoding - e) for e in database.values())
        door_open = dist < threshold
        print(f"It's {identity}, welcome in!" if door_open else f"It's not {identity}, please go away")
        return dist, door_open
    """),
    "threshold_hard_coded": _verify("""
        if identity not in database:
            return np.inf, False
        dist = np.linalg.norm(img_to_encoding(image_path, model) - database[identity])
        door_open = dist < 0.7
        print(f"It's {identity}, welcome in!" if door_open else f"It's not {identity}, please go away")
        return dist, door_open
    """),
    "unknown_identity_crashes": _verify("""
        dist = np.linalg.norm(img_to_encoding(image_path, model) - database[identity])
        door_open = dist < threshold
        print(f"It's {identity}, welcome in!" if door_open else f"It's not {identity}, please go away")
        return dist, door_open
    """),
    "door_open_as_string": _verify("""
        if identity not in database:
            return np.inf, False
        dist = np.linalg.norm(img_to_encoding(image_path, model) - database[identity])
        door_open = "open" if dist < threshold else "closed"
        print(f"It's {identity}, welcome in!" if dist < threshold else f"It's not {identity}, please go away")
        return dist, door_open
    """),
}

# -- who_is_it ------------------------------------------------------------------

CORRECT_WHO = {
    "classic_loop": _who("""
        encoding = img_to_encoding(image_path, model)
        min_dist = 100
        identity = None
        for name, db_enc in database.items():
            dist = np.linalg.norm(encoding - db_enc)
            if dist < min_dist:
                min_dist = dist
                identity = name
        if min_dist >= threshold:
            print("Not in the database.")
            return min_dist, None
        print("It's " + str(identity) + ", the distance is " + str(min_dist))
        return min_dist, identity
    """),
    "vectorised": _who("""
        names = list(database)
        stacked = np.concatenate([database[n] for n in names], axis=0)        # (k, 128)
        dists = np.linalg.norm(stacked - img_to_encoding(image_path, model), axis=1)
        best = int(np.argmin(dists))
        if dists[best] < threshold:
            print(f"It's {names[best]}, the distance is {dists[best]:.3f}")
            return float(dists[best]), names[best]
        print("Not in the database.")
        return float(dists[best]), None
    """),
    "min_with_key": _who("""
        encoding = img_to_encoding(image_path, model)
        distance = {name: float(np.linalg.norm(encoding - e)) for name, e in database.items()}
        identity = min(distance, key=distance.get)
        min_dist = distance[identity]
        if not min_dist < threshold:
            identity = None
            print("Not in the database.")
        else:
            print(f"It's {identity}, the distance is {min_dist}")
        return min_dist, identity
    """),
}

WRONG_WHO = {
    "last_person": _who("""
        encoding = img_to_encoding(image_path, model)
        for name, db_enc in database.items():
            min_dist = np.linalg.norm(encoding - db_enc)
            identity = name
        if min_dist >= threshold:
            print("Not in the database.")
            return min_dist, None
        print(f"It's {identity}, the distance is {min_dist}")
        return min_dist, identity
    """),
    "largest": _who("""
        encoding = img_to_encoding(image_path, model)
        min_dist, identity = 0.0, None
        for name, db_enc in database.items():
            dist = np.linalg.norm(encoding - db_enc)
            if dist > min_dist:
                min_dist, identity = dist, name
        if min_dist >= threshold:
            print("Not in the database.")
            return min_dist, None
        print(f"It's {identity}, the distance is {min_dist}")
        return min_dist, identity
    """),
    "identity_always_returned": _who("""
        encoding = img_to_encoding(image_path, model)
        min_dist, identity = np.inf, None
        for name, db_enc in database.items():
            dist = np.linalg.norm(encoding - db_enc)
            if dist < min_dist:
                min_dist, identity = dist, name
        if min_dist > threshold:
            print("Not in the database.")
        else:
            print(f"It's {identity}, the distance is {min_dist}")
        return min_dist, identity
    """),
    "threshold_hard_coded": _who("""
        encoding = img_to_encoding(image_path, model)
        min_dist, identity = np.inf, None
        for name, db_enc in database.items():
            dist = np.linalg.norm(encoding - db_enc)
            if dist < min_dist:
                min_dist, identity = dist, name
        if min_dist > 0.7:
            print("Not in the database.")
            return min_dist, None
        print(f"It's {identity}, the distance is {min_dist}")
        return min_dist, identity
    """),
    "squared": _who("""
        encoding = img_to_encoding(image_path, model)
        min_dist, identity = np.inf, None
        for name, db_enc in database.items():
            dist = np.sum(np.square(encoding - db_enc))
            if dist < min_dist:
                min_dist, identity = dist, name
        if min_dist > threshold:
            print("Not in the database.")
            return min_dist, None
        print(f"It's {identity}, the distance is {min_dist}")
        return min_dist, identity
    """),
}


# -- more correct styles: the hidden edge cases (issue #19) must give them full marks -----------

CORRECT_VERIFY["cosine"] = _verify("""
    if identity not in database:
        return np.inf, False
    u = img_to_encoding(image_path, model).ravel()
    v = np.ravel(database[identity])
    dist = np.sqrt(max(2.0 - 2.0 * float(u @ v), 0.0))  # encodings have length 1: d^2 = 2 - 2 cos
    door_open = bool(dist < threshold)
    print(f"It's {identity}, welcome in!" if door_open else f"It's not {identity}, please go away")
    return dist, door_open
""")
CORRECT_VERIFY["float64"] = _verify("""
    if identity not in database:
        return np.inf, False
    encoding = np.asarray(img_to_encoding(image_path, model), dtype=np.float64)
    dist = float(np.linalg.norm(encoding - np.asarray(database[identity], dtype=np.float64)))
    door_open = dist < threshold
    print(f"It's {identity}, welcome in!" if door_open else f"It's not {identity}, please go away")
    return dist, door_open
""")
CORRECT_WHO["cosine"] = _who("""
    e = img_to_encoding(image_path, model).ravel()
    names = list(database)
    cos = np.array([float(np.ravel(database[name]) @ e) for name in names], dtype=np.float32)
    dists = np.sqrt(np.maximum(2 - 2 * cos, 0))
    best = int(np.argmin(dists))
    if dists[best] < threshold:
        print(f"It's {names[best]}, the distance is {dists[best]:.3f}")
        return dists[best], names[best]
    print("Not in the database.")
    return dists[best], None
""")
CORRECT_WHO["float64"] = _who("""
    encoding = np.asarray(img_to_encoding(image_path, model), dtype=np.float64)
    min_dist, identity = np.inf, None
    for name, db_enc in database.items():
        dist = np.sqrt(np.sum((encoding - np.asarray(db_enc, dtype=np.float64)) ** 2))
        if dist < min_dist:
            min_dist, identity = dist, name
    if not min_dist < threshold:
        print("Not in the database.")
        return min_dist, None
    print(f"It's {identity}, the distance is {min_dist}")
    return min_dist, identity
""")


# -- mistakes that pass every public check; only the hidden tests catch them (issue #19) ---------

HIDDEN_ONLY_DATABASE = {
    # the cast's own photos for the cast's names, whatever path was given
    "cast_shortcut": _database("""
        from fr_utils.data import sample_cast
        cast = sample_cast()
        database = {}
        for name, path in image_paths_by_name.items():
            if name in cast:
                path = cast[name][0]
            database[name] = img_to_encoding(path, model)
        return database
    """),
    "model_ignored": _database("""
        return {name: img_to_encoding(path) for name, path in image_paths_by_name.items()}
    """),
}

HIDDEN_ONLY_VERIFY = {
    "less_equal": _verify("""
        if identity not in database:
            return np.inf, False
        dist = np.linalg.norm(img_to_encoding(image_path, model) - database[identity])
        door_open = dist <= threshold
        print(f"It's {identity}, welcome in!" if door_open else f"It's not {identity}, please go away")
        return dist, door_open
    """),
    "model_ignored": _verify("""
        if identity not in database:
            return np.inf, False
        dist = np.linalg.norm(img_to_encoding(image_path) - database[identity])
        door_open = dist < threshold
        print(f"It's {identity}, welcome in!" if door_open else f"It's not {identity}, please go away")
        return dist, door_open
    """),
}

HIDDEN_ONLY_WHO = {
    "less_equal": _who("""
        encoding = img_to_encoding(image_path, model)
        min_dist, identity = np.inf, None
        for name, db_enc in database.items():
            dist = np.linalg.norm(encoding - db_enc)
            if dist < min_dist:
                min_dist, identity = dist, name
        if min_dist > threshold:
            print("Not in the database.")
            return min_dist, None
        print(f"It's {identity}, the distance is {min_dist}")
        return min_dist, identity
    """),
    "model_ignored": _who("""
        encoding = img_to_encoding(image_path)
        min_dist, identity = np.inf, None
        for name, db_enc in database.items():
            dist = np.linalg.norm(encoding - db_enc)
            if dist < min_dist:
                min_dist, identity = dist, name
        if min_dist >= threshold:
            print("Not in the database.")
            return min_dist, None
        print(f"It's {identity}, the distance is {min_dist}")
        return min_dist, identity
    """),
}
