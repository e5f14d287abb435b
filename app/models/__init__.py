"""All ORM tables, imported here so Alembic and `db.metadata` see every one."""
from app.models.agent import AGENT_STATUSES, Agent
from app.models.api_key import ROLES, ApiKey
from app.models.api_tool import HTTP_METHODS, ApiTool
from app.models.base import Base, utcnow
from app.models.cluster import PeriodicClaim, WorkerHeartbeat
from app.models.conversation import (
    MESSAGE_ROLES,
    Conversation,
    ConversationAttachment,
    Integration,
    Message,
)
from app.models.embedding_cache import EMBEDDING_CACHE
from app.models.evaluation import (
    EVALUATION_TYPES,
    Evaluation,
    EvaluationCase,
    EvaluationResult,
    EvaluationRun,
)
from app.models.knowledge import (
    ACTIVE_SYNC_STATUSES,
    INDEXED_STATUSES,
    SOURCE_TYPES,
    Document,
    IndexedDocument,
    KnowledgeIndex,
    KnowledgeSource,
    SyncRun,
)
from app.models.llm_model import MODEL_KINDS, PROVIDERS, LlmModel
from app.models.prompt_template import TEMPLATE_TYPES, PromptTemplate, PromptTemplateVersion
from app.models.tools import ANSWER_MODES, RagTool, RetrievalTool, Trace
from app.models.uploads import Blob, SourceUpload
from app.models.usage import UsageRecord
from app.models.user import (
    WORKSPACE_ID,
    Invitation,
    LoginFailure,
    LoginToken,
    StoredImage,
    User,
    UserSession,
    Workspace,
)

__all__ = [
    "PeriodicClaim",
    "WorkerHeartbeat",
    "MESSAGE_ROLES",
    "Conversation",
    "ConversationAttachment",
    "Integration",
    "Message",
    "EVALUATION_TYPES",
    "Evaluation",
    "EvaluationCase",
    "EvaluationResult",
    "EvaluationRun",
    "ANSWER_MODES",
    "RagTool",
    "RetrievalTool",
    "Trace",
    "ACTIVE_SYNC_STATUSES",
    "INDEXED_STATUSES",
    "SOURCE_TYPES",
    "Document",
    "IndexedDocument",
    "KnowledgeIndex",
    "KnowledgeSource",
    "SyncRun",
    "AGENT_STATUSES",
    "HTTP_METHODS",
    "MODEL_KINDS",
    "PROVIDERS",
    "ROLES",
    "TEMPLATE_TYPES",
    "Agent",
    "ApiKey",
    "ApiTool",
    "Base",
    "LlmModel",
    "PromptTemplate",
    "PromptTemplateVersion",
    "Blob",
    "EMBEDDING_CACHE",
    "SourceUpload",
    "UsageRecord",
    "WORKSPACE_ID",
    "Invitation",
    "LoginFailure",
    "LoginToken",
    "StoredImage",
    "User",
    "UserSession",
    "Workspace",
    "utcnow",
]
