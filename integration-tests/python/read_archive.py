"""Reads the raw archive of one import with pyarrow and prints what it holds
as JSON: every Parquet object of the import as one dataset (Hive partitions
from the folder names), the type of each column, the rows with their
provenance, and the sha256 of each archived original.

usage: read_archive.py ARCHIVE_DIR IMPORT_ID
"""

import hashlib
import json
import pathlib
import sys

import pyarrow.dataset as ds


def main() -> None:
    root = pathlib.Path(sys.argv[1])
    import_id = sys.argv[2]
    parts = sorted(root.glob(f"organization=*/import_type=*/date=*/import={import_id}/file=*"))
    parquet = sorted(str(p) for d in parts for p in d.glob("*.parquet"))
    out = {"parquet_files": len(parquet), "originals": {}, "columns": {}, "rows": []}
    for d in parts:
        for original in d.glob("_original*"):
            file_id = d.name.split("=", 1)[1]
            out["originals"][file_id] = hashlib.sha256(original.read_bytes()).hexdigest()
    if parquet:
        dataset = ds.dataset(parquet, format="parquet")
        table = dataset.to_table()
        out["columns"] = {f.name: str(f.type) for f in table.schema}
        keep = ["_organization_id", "_import_id", "_file_id", "_attempt", "_row_number",
                "_outcome", "_error", "case_number"]
        out["rows"] = table.select([c for c in keep if c in table.column_names]).to_pylist()
        out["partitions"] = sorted({str(pathlib.Path(p).parent.relative_to(root)) for p in parquet})
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
