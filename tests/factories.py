"""factory_boy factories shared by the whole suite."""

from __future__ import annotations

import factory
from django.contrib.auth.models import Group

from apps.accounts.models import User
from apps.cluster.models import Environment, Node, NodeGroup


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"team{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    role = "internal"
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-1")

    @factory.post_generation
    def groups(self, create: bool, extracted: list[str] | None, **kwargs: object) -> None:
        if create and extracted:
            self.groups.set([Group.objects.get_or_create(name=name)[0] for name in extracted])
        if create:
            self.save()


class NodeGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NodeGroup
        django_get_or_create = ("name",)

    name = "training"


class NodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Node

    name = factory.Sequence(lambda n: f"node-{n}")
    group = factory.SubFactory(NodeGroupFactory)
    gpu_count = 8
    cpu = 64
    memory_bytes = 256 * 1024**3
    room = "a"


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment
        django_get_or_create = ("name",)

    name = "default"
    image = "python:3.11-slim"
    interpreter = "python3"
