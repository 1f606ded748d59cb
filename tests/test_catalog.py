from pathlib import Path

import pytest

from solver.data.catalog import load_catalog, read_skypilot_csv
from solver.data.gpus import get_gpu, load_gpus
from solver.errors import InputError, UnknownNameError

DATA = Path(__file__).parent / "data"


def test_shipped_aws_catalog_covers_every_type_and_region():
    cat = load_catalog("aws")
    types = cat.instance_types()
    assert len(types) >= 40
    assert len(cat.regions) == 23
    # every row of the source kept, except those with neither an on-demand nor a spot price
    import pandas as pd

    from solver.data.resources import data_path

    raw = pd.read_csv(data_path("catalogs", "aws.csv"))
    assert len(raw) == 1733
    assert len(cat.zones) == int((raw.Price.notna() | raw.SpotPrice.notna()).sum())
    assert types["g5.xlarge"].gpu_memory_mib == 22888  # as AWS reports it, not 24 GB
    assert types["p4de.24xlarge"].gpu == "A100-80GB"
    assert types["g6f.xlarge"].gpu_count == pytest.approx(0.125)


def test_every_catalog_gpu_has_a_spec():
    gpus = load_gpus()
    for name in load_catalog("aws").gpus:
        assert name in gpus


def test_summary_min_and_median_spot():
    s = load_catalog("aws").summary()
    row = s[(s.instance_type == "g4dn.xlarge") & (s.region == "us-east-1")].iloc[0]
    z = load_catalog("aws").zones
    zr = z[(z.instance_type == "g4dn.xlarge") & (z.region == "us-east-1")]
    assert row.spot_min_usd_per_hour == zr.spot_usd_per_hour.min()
    assert row.spot_median_usd_per_hour == zr.spot_usd_per_hour.median()
    assert row.on_demand_usd_per_hour == pytest.approx(0.526)


def test_offers_per_market():
    cat = load_catalog("aws").filter(regions=["us-east-1"], instances=["g5.xlarge", "p5e.48xlarge"])
    offers = cat.offers(["on_demand", "spot"])
    assert set(offers.market) <= {"on_demand", "spot"}
    g5 = offers[offers.instance_type == "g5.xlarge"].set_index("market")
    assert g5.loc["on_demand", "usd_per_hour"] == pytest.approx(1.006)
    assert g5.loc["spot", "usd_per_hour"] < g5.loc["on_demand", "usd_per_hour"]


def test_filters_reject_unknown_names_with_suggestions():
    cat = load_catalog("aws")
    with pytest.raises(UnknownNameError, match=r"did you mean 'g5\.xlarge'"):
        cat.filter(instances=["g5.xlarg"])
    with pytest.raises(UnknownNameError, match="unknown region"):
        cat.filter(regions=["mars-1"])
    with pytest.raises(UnknownNameError, match="did you mean"):
        get_gpu("H10")


def test_gpu_aliases():
    assert get_gpu("a100-40gb").name == "A100"
    assert get_gpu("H100-SXM").name == "H100"


def test_custom_skypilot_catalog():
    cat = load_catalog(str(DATA / "custom_catalog.csv"))
    types = cat.instance_types()
    assert set(types) == {"onprem.l40s-x2", "onprem.a100-x8"}
    offers = cat.offers(["on_demand", "spot"], spot_price="min")
    a100 = offers[(offers.instance_type == "onprem.a100-x8") & (offers.market == "spot")].iloc[0]
    assert a100.usd_per_hour == pytest.approx(8.75)
    # no spot price for the L40S box: no spot offer, on-demand kept
    assert not ((offers.instance_type == "onprem.l40s-x2") & (offers.market == "spot")).any()


def test_custom_catalog_relative_to_base_dir():
    cat = load_catalog("custom_catalog.csv", base_dir=DATA)
    assert len(cat.instance_types()) == 2


def test_custom_catalog_gpuinfo_column(tmp_path):
    src = tmp_path / "vms.csv"
    src.write_text(
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone\n"
        "g6.xlarge,L4,1.0,4.0,16.0,\"{'Gpus': [{'Name': 'L4', 'MemoryInfo': {'SizeInMiB': 22888}}], "
        "'TotalGpuMemoryInMiB': 22888}\",0.8048,0.35,us-east-1,use1-az1\n"
        "m5.large,,,2.0,8.0,,0.096,0.03,us-east-1,use1-az1\n"
    )
    cat = load_catalog(str(src))
    assert cat.instance_types()["g6.xlarge"].gpu_memory_mib == 22888


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("InstanceType,Price\nx,1\n", "lacks the column"),
        (
            "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuMemoryMiBPerGpu,Price,SpotPrice,Region,AvailabilityZone\n"
            "x.large,Z9000,1,4,16,1000,1.0,,r,a\n",
            "unknown GPU 'Z9000'",
        ),
        (
            "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuMemoryMiBPerGpu,Price,SpotPrice,Region,AvailabilityZone\n"
            "x.large,L4,1,4,16,22888,-1.0,,r,a\n",
            "row 2 on_demand_usd_per_hour: expected a positive finite number",
        ),
        (
            "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuMemoryMiBPerGpu,Price,SpotPrice,Region,AvailabilityZone\n"
            "x.large,L4,one,4,16,22888,1.0,,r,a\n",
            "gpu_count",
        ),
        (
            "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone\n"
            "x.large,L4,1,4,16,1.0,,r,a\n",
            "per-GPU memory column",
        ),
        (
            "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuMemoryMiBPerGpu,Price,SpotPrice,Region,AvailabilityZone\n"
            "x.large,L4,1,4,16,nan,1.0,,r,a\n",
            "GpuMemoryMiBPerGpu: expected a positive finite number",
        ),
    ],
)
def test_custom_catalog_errors(tmp_path, text, match):
    src = tmp_path / "c.csv"
    src.write_text(text)
    with pytest.raises(InputError, match=match):
        read_skypilot_csv(src)


def test_missing_catalog_file():
    with pytest.raises(InputError, match="no catalog file"):
        load_catalog("/nonexistent/c.csv")
    with pytest.raises(UnknownNameError, match="unknown catalog"):
        load_catalog("azure")
