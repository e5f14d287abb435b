"""Agent tasks: instructions an agent carries out in the background, as a turn in its own conversation."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.common import MessageSchema, deleted, envelope, list_envelope, ok
from app.api.tasks.schemas import TaskListArgs, TaskSchema, TaskUpdateSchema, TaskWriteSchema
from app.auth import requires
from app.services import tasks

blp = Blueprint("tasks", __name__, url_prefix="/api/tasks", description="Tasks agents carry out in the background")


@blp.route("")
class Tasks(MethodView):
    @requires("viewer")
    @blp.arguments(TaskListArgs, location="query")
    @blp.response(200, list_envelope(TaskSchema))
    def get(self, args):
        """List tasks (filter by agent, status, priority, created since)"""
        return tasks.list_tasks(args)

    @requires("operator")
    @blp.arguments(TaskWriteSchema)
    @blp.response(201, envelope(TaskSchema))
    def post(self, body):
        """Assign a task to an agent; it runs when the agent's queue reaches it (priority, then age)"""
        return ok(tasks.create_task(body))


@blp.route("/<task_id>")
class TaskById(MethodView):
    @requires("viewer")
    @blp.response(200, envelope(TaskSchema))
    def get(self, task_id):
        """Get one task, with its result or error"""
        return ok(tasks.get_task(task_id))

    @requires("operator")
    @blp.arguments(TaskUpdateSchema)
    @blp.response(200, envelope(TaskSchema))
    def put(self, body, task_id):
        """Update a task that is not running; only the fields sent change"""
        return ok(tasks.update_task(task_id, body))

    @requires("operator")
    @blp.response(200, MessageSchema)
    def delete(self, task_id):
        """Delete a task that is not running"""
        tasks.delete_task(task_id)
        return deleted("task")


@blp.route("/<task_id>/execute")
class TaskExecute(MethodView):
    @requires("operator")
    @blp.response(202, envelope(TaskSchema))
    def post(self, task_id):
        """Run the task now, ahead of the agent's queue (a finished task runs again)"""
        return ok(tasks.execute_task(task_id))


@blp.route("/<task_id>/cancel")
class TaskCancel(MethodView):
    @requires("operator")
    @blp.response(200, envelope(TaskSchema))
    def post(self, task_id):
        """Cancel a waiting or running task (a running turn stops at its next step)"""
        return ok(tasks.cancel_task(task_id))
