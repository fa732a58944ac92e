"""`sam local` with docker-compose (docs/sam-local.md, `make sam-local`), checked without Docker: what
the functions' containers would be given, and whether it points at what docker-compose.yml runs and
what local.bootstrap creates there.

docker-compose.yml, local/sam-local-env.json and samconfig.toml are read as files; what `sam local`
makes of the env file is computed by the SAM CLI's own code (the pinned aws-sam-cli), which passes a
variable of the file to a function only if the template declares it for that function.
"""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from local.bootstrap import DYNAMODB_URL, STEPFUNCTIONS_URL, SamLocalResolver, parse_args
from local.template import ACCOUNT_ID, ROOT, LocalStack, load_template, resources_of_type, state_machines

# the SAM CLI's template reading (sam_local_environments) warns about its own deprecated calls
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:samtranslator.*"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:samcli.*")]

TEMPLATE = load_template()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
LOCAL_COMMANDS = ("local_start_api", "local_start_lambda", "local_invoke")  # samconfig.toml's sections


def sam_parameters(command: str) -> dict[str, Any]:
    """samconfig.toml's defaults for a `sam local` command (local_start_api …)."""
    return SAMCONFIG["default"].get(command, {}).get("parameters", {})


ENV_FILE = sam_parameters("local_start_api")["env_vars"]
ENV = json.loads((ROOT / ENV_FILE).read_text())["Parameters"]
REGION = sam_parameters("local_start_api").get("region", "us-east-1")  # sam's own default: us-east-1
#: The env file's endpoints and the image of the service each must name.
ENDPOINTS = {"AWS_ENDPOINT_URL_DYNAMODB": "amazon/dynamodb-local", "AWS_ENDPOINT_URL_SFN": "amazon/aws-stepfunctions-local"}
#: The env file's state machine ARNs and the template's state machine each stands for.
STATE_MACHINES = {"STATE_MACHINE_ARN": "AgentRunStateMachine", "OFFBOARDING_STATE_MACHINE_ARN": "OffboardingStateMachine"}


def declared(logical_id: str | None = None) -> set[str]:
    """Variables the template declares for every function (None) or for one, Globals included."""
    names = set(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    if logical_id is not None:
        names |= set(TEMPLATE["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {}))
    return names


@cache
def sam_local_environments() -> dict[str, dict[str, str]]:
    """Function logical id → the environment `sam local` gives its container with samconfig's env file
    and region (aws-sam-cli's LocalLambdaRunner, as `sam local start-api`/`invoke` build it)."""
    from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(str(ROOT / "template.yaml"))
    provider = SamFunctionProvider(stacks, ignore_code_extraction_warnings=True)
    runner = LocalLambdaRunner(local_runtime=None, function_provider=provider, cwd=str(ROOT), real_path=str(ROOT),
                               aws_region=REGION, env_vars_values=json.loads((ROOT / ENV_FILE).read_text()))
    return {function.name: runner._make_env_vars(function).resolve() for function in provider.get_all()}


def service(name: str) -> dict[str, Any]:
    assert name in COMPOSE["services"], f"no docker-compose service {name!r}"
    return COMPOSE["services"][name]


def published(name: str) -> dict[int, int]:
    """A compose service's published ports: container port → host port."""
    pairs = (str(mapping).rsplit(":", 2)[-2:] for mapping in service(name).get("ports", []))
    return {int(container): int(host) for host, container in pairs}


# --------------------------------------------------------------------------- what the functions get


def test_every_variable_of_the_env_file_is_declared_for_the_functions():
    """`sam local` drops a variable of the env file that the template does not declare (aws-sam-cli
    issues 139, 381): the functions would then call AWS itself instead of the containers."""
    every_function = declared()
    anywhere = every_function.union(*(declared(logical_id) for logical_id in
                                      resources_of_type(TEMPLATE, "AWS::Serverless::Function")))
    assert not set(ENV) - anywhere, f"sam local would ignore {sorted(set(ENV) - anywhere)}: declare them in template.yaml"
    assert set(ENDPOINTS) | {"TABLE_NAME", "STATE_MACHINE_ARN"} <= every_function, "every function needs these"


def test_sam_local_gives_each_function_the_env_files_values():
    """Each variable of the file reaches every function, except one the template gives only to some
    functions (OFFBOARDING_STATE_MACHINE_ARN), which reaches those."""
    environments = sam_local_environments()
    assert set(environments) == set(resources_of_type(TEMPLATE, "AWS::Serverless::Function"))
    only_some = set().union(*(declared(logical_id) for logical_id in environments)) - declared()
    for logical_id, environment in environments.items():
        for name in set(ENV) - (only_some - declared(logical_id)):
            assert environment.get(name) == ENV[name], f"sam local gives {logical_id} no {name}={ENV[name]!r}"
        assert environment["AWS_REGION"] == REGION, logical_id


def test_every_function_reads_its_settings_from_what_sam_local_gives_it():
    """(sam local resolves a resource's Ref to its logical id: USAGE_PLAN_IDS must still be JSON.)"""
    from agenthq.settings import Settings

    for logical_id, environment in sam_local_environments().items():
        settings = Settings.from_env(environment)
        assert (settings.table_name, settings.state_machine_arn, settings.tenant_role_arn) == (
            ENV["TABLE_NAME"], ENV["STATE_MACHINE_ARN"], ""), logical_id


def test_the_template_leaves_the_endpoints_to_aws_where_it_is_deployed():
    """Declared empty: botocore takes an empty AWS_ENDPOINT_URL_<SERVICE> as unset, so deployed functions call
    AWS. (The local cloud sets its own endpoints instead: tests/integration/test_lambda_runtime.py.)"""
    import boto3

    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert {variables[name] for name in ENDPOINTS} == {""}
    session = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="eu-west-1")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ENDPOINT_URL", *ENDPOINTS):
            patch.setenv(name, "")
        assert session.client("dynamodb").meta.endpoint_url == "https://dynamodb.eu-west-1.amazonaws.com"
        assert session.client("stepfunctions").meta.endpoint_url == "https://states.eu-west-1.amazonaws.com"


# --------------------------------------------------------------------------- the containers


def test_the_images_are_pinned_to_a_version():
    for name, spec in COMPOSE["services"].items():
        image = spec["image"]
        assert re.search(r"(:\d+(\.\d+)+$)|(@sha256:[0-9a-f]{64}$)", image), f"{name}: {image} is not a pinned version"


def test_the_functions_containers_join_the_network_of_the_compose_services():
    (key, network), = COMPOSE["networks"].items()
    for command in LOCAL_COMMANDS:
        assert sam_parameters(command).get("docker_network") == network["name"], command
    for name, spec in COMPOSE["services"].items():
        assert key in spec["networks"], f"{name} is not on {network['name']}"


def test_the_env_files_endpoints_name_the_compose_services_that_serve_them():
    for variable, image in ENDPOINTS.items():
        url = urlsplit(ENV[variable])
        assert url.scheme == "http" and url.hostname and url.port, ENV[variable]
        assert service(url.hostname)["image"].startswith(image + ":"), f"{variable} names {url.hostname}"
        assert url.port in published(url.hostname), f"{variable}: {url.hostname} does not listen on {url.port}"


def test_local_bootstrap_by_default_reaches_the_ports_compose_publishes():
    args = parse_args([])
    for variable, default in (("AWS_ENDPOINT_URL_DYNAMODB", args.dynamodb), ("AWS_ENDPOINT_URL_SFN", args.stepfunctions)):
        inside = urlsplit(ENV[variable])
        outside = urlsplit(default)
        assert outside.hostname == "127.0.0.1" and outside.port == published(inside.hostname)[inside.port], variable
    assert (args.dynamodb, args.stepfunctions) == (DYNAMODB_URL, STEPFUNCTIONS_URL)


def test_step_functions_local_calls_the_functions_sam_local_start_lambda_serves():
    from samcli.commands.local.start_lambda.cli import cli as start_lambda
    from samcli.lib.utils.name_utils import normalize_lambda_function_name

    stepfunctions = service(urlsplit(ENV["AWS_ENDPOINT_URL_SFN"]).hostname or "")
    lambda_endpoint = urlsplit(stepfunctions["environment"]["LAMBDA_ENDPOINT"])
    port = next(option.default for option in start_lambda.params if option.name == "port")
    assert lambda_endpoint.port == port, "sam local start-lambda's default port"
    assert f"{lambda_endpoint.hostname}:host-gateway" in stepfunctions["extra_hosts"], "the host, seen from a container"
    assert stepfunctions["environment"]["AWS_DEFAULT_REGION"] == REGION
    assert stepfunctions["environment"].get("AWS_ACCOUNT_ID", ACCOUNT_ID) == ACCOUNT_ID  # Step Functions Local's default
    functions = set(resources_of_type(TEMPLATE, "AWS::Serverless::Function"))
    args = parse_args([])
    machines = state_machines(TEMPLATE, SamLocalResolver(TEMPLATE, LocalStack(region=args.region, table_name=args.table)))
    assert {machine.logical_id for machine in machines} == set(STATE_MACHINES.values())
    for machine in machines:
        called = set(re.findall(r'"FunctionName": "([^"]+)"', machine.definition))
        assert called and "${" not in machine.definition, machine.logical_id
        for arn in called:
            assert arn.split(":")[3] == REGION, arn
            assert normalize_lambda_function_name(arn) in functions, f"sam local knows no function {arn}"


# --------------------------------------------------------------------------- what local.bootstrap creates


def test_the_env_file_names_the_table_and_state_machines_local_bootstrap_creates():
    args = parse_args([])
    assert ENV["TABLE_NAME"] == args.table
    resolver = SamLocalResolver(TEMPLATE, LocalStack(region=args.region, table_name=args.table))
    for variable, logical_id in STATE_MACHINES.items():
        assert ENV[variable] == resolver.state_machine_arn(logical_id), variable
    assert args.region == REGION
    # ... and the variable is the one the template gives that state machine's ARN in
    assert TEMPLATE["Resources"]["AdminFunction"]["Properties"]["Environment"]["Variables"][
        "OFFBOARDING_STATE_MACHINE_ARN"] == {"Ref": "OffboardingStateMachine"}
    assert resolver.resolve(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["STATE_MACHINE_ARN"]) \
        == ENV["STATE_MACHINE_ARN"]


def test_every_sam_local_command_reads_the_env_file_in_the_same_region():
    for command in LOCAL_COMMANDS:
        parameters = sam_parameters(command)
        assert parameters.get("env_vars") == ENV_FILE, command
        assert parameters.get("region") == REGION, f"{command}: the containers' AWS_REGION would be the shell's"
    assert (ROOT / ENV_FILE).is_file()
