"""The sagemaker_vision AirflowPlugin (plugin.py): how Airflow loads it and what it registers.

The links themselves are tested in ``tests/unit/links/test_sagemaker.py``.
"""

from __future__ import annotations

from sagemaker_vision.plugin import SageMakerVisionPlugin

LINK_NAMES = {"SageMaker Training Job", "Training Logs (CloudWatch)", "SageMaker Endpoint", "SageMaker Labeling Job"}


def test_plugin_registers_the_four_links_on_no_operator_class():
    """The operators list their own links; a plugin link naming a class would replace the operator's own in
    the api-server (where it could not read the task's XComs)."""
    from sagemaker_vision.links.sagemaker import ALL_LINKS

    links = {link.name: link for link in SageMakerVisionPlugin.operator_extra_links}
    assert set(links) == LINK_NAMES
    assert {type(link) for link in links.values()} == set(ALL_LINKS)
    assert all(not link.operators for link in links.values())
    assert SageMakerVisionPlugin.name == "sagemaker_vision"


def test_airflows_loader_loads_the_plugin_from_a_plugins_file(tmp_path):
    """What the loader does with a plugins/*.py that imports the plugin from the package."""
    from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory

    (tmp_path / "sv_plugin_entry.py").write_text("from sagemaker_vision.plugin import SageMakerVisionPlugin\n")
    plugins, errors = _load_plugins_from_plugin_directory(plugins_folder=str(tmp_path), load_examples=False)
    assert errors == {}
    (loaded,) = plugins
    assert loaded.name == "sagemaker_vision"
    assert {link.name for link in loaded.operator_extra_links} == LINK_NAMES


def test_the_plugins_folder_registers_the_plugin():
    """airflow.plugins_manager on the project's plugins/ (what every Airflow component loads)."""
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()
    assert errors == {}, errors
    names = [p.name for p in plugins]
    assert "sagemaker_vision" in names, (
        f"plugins/ registers {names}: add plugins/sagemaker_vision_plugin.py with "
        "`from sagemaker_vision.plugin import SageMakerVisionPlugin`"
    )
    assert {link.name for link in plugins_manager.get_operator_extra_links()} >= LINK_NAMES
